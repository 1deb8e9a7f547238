-- People: who appears in the archive and what each person feels (faces grouped by `run --people`).
-- person_id (P1, P2, ...: kept across runs), name (`fer-mine people name`), faces, images (photos
-- and video frames), photos, frames, videos, first_seen and last_seen (EXIF time), first_in_video_s
-- and last_in_video_s (the earliest and latest moment in a video, seconds from its start),
-- dominant_emotion (ties: alphabetical first) and its share; then the share of each emotion in
-- that person's faces.
WITH p AS (
    SELECT person_id, person_name, emotion, image, uri, frame_index, video_time_s, taken_at FROM faces
    WHERE person_id IS NOT NULL
),
totals AS (
    SELECT person_id, any_value(person_name) AS name, count(*) AS faces, count(DISTINCT image) AS images,
           count(DISTINCT image) FILTER (frame_index IS NULL) AS photos,
           count(DISTINCT image) FILTER (frame_index IS NOT NULL) AS frames,
           count(DISTINCT uri) FILTER (frame_index IS NOT NULL) AS videos,
           min(taken_at) AS first_seen, max(taken_at) AS last_seen,
           min(video_time_s) AS first_in_video_s, max(video_time_s) AS last_in_video_s
    FROM p GROUP BY person_id
),
counts AS (SELECT person_id, emotion, count(*) AS n FROM p GROUP BY person_id, emotion),
dominant AS (
    SELECT person_id, arg_max(emotion, n * 1000000 - ascii(emotion)) AS dominant_emotion,
           max(n) / sum(n) AS dominant_share
    FROM counts GROUP BY person_id
),
shares AS (
    PIVOT (SELECT person_id, emotion, n / sum(n) OVER (PARTITION BY person_id) AS share FROM counts)
    ON emotion USING coalesce(sum(share), 0) GROUP BY person_id
)
SELECT t.person_id, t.name, t.faces, t.images, t.photos, t.frames, t.videos, t.first_seen, t.last_seen,
       t.first_in_video_s, t.last_in_video_s, d.dominant_emotion, d.dominant_share, s.* EXCLUDE (person_id)
FROM totals AS t JOIN dominant AS d USING (person_id) JOIN shares AS s USING (person_id)
ORDER BY t.faces DESC, CAST(substr(t.person_id, 2) AS INTEGER)
