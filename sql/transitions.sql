-- Sequences: how the dominant emotion changes from one photo to the next within a folder.
-- Photos in EXIF-time order (then by path; photos without faces are skipped); the sampled
-- frames of a video form their own sequence, in frame order.
-- An image's dominant emotion: its most frequent top label (ties: highest summed confidence).
-- from_emotion -> to_emotion: consecutive image pairs; transitions: count;
-- probability: transitions / all transitions leaving from_emotion.
WITH label_weight AS (
    SELECT folder, image, any_value(path) AS path, any_value(taken_at) AS taken_at,
           any_value(frame_index) AS frame_index, emotion, count(*) * 1000 + sum(confidence) AS weight
    FROM faces
    GROUP BY folder, image, emotion
),
per_image AS (
    SELECT folder, image, any_value(path) AS path, any_value(taken_at) AS taken_at,
           any_value(frame_index) AS frame_index, arg_max(emotion, weight) AS dominant
    FROM label_weight
    GROUP BY folder, image
),
ordered AS (
    SELECT dominant AS from_emotion,
           lead(dominant) OVER (
               PARTITION BY folder, CASE WHEN frame_index IS NOT NULL THEN path END
               ORDER BY taken_at NULLS LAST, path, frame_index
           ) AS to_emotion
    FROM per_image
)
SELECT from_emotion, to_emotion, count(*) AS transitions,
       count(*) / sum(count(*)) OVER (PARTITION BY from_emotion) AS probability
FROM ordered
WHERE to_emotion IS NOT NULL
GROUP BY from_emotion, to_emotion
ORDER BY from_emotion, to_emotion
