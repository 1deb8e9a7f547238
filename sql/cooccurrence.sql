-- Emotion co-occurrence: which emotions appear together on different faces of one image.
-- For each pair, the number of images where one face shows emotion_a and another face shows
-- emotion_b (a = b: two faces with the same one).
-- emotion_a <= emotion_b alphabetically; images: count of such images.
WITH labels AS (
    SELECT emotion, (row_number() OVER (ORDER BY emotion) - 1)::INTEGER AS slot
    FROM (SELECT DISTINCT emotion FROM faces)
),
group_images AS (
    -- one number per image (uri, frame_index) with two faces or more: 16 bits per emotion
    -- counting its faces, so that images with the same counts are counted together
    SELECT sum(1::HUGEINT << (16 * slot)) AS counts
    FROM faces JOIN labels USING (emotion)
    GROUP BY uri, frame_index
    HAVING count(*) >= 2
),
mixes AS (SELECT counts, count(*) AS images FROM group_images GROUP BY counts),
per_label AS (
    SELECT counts, images, emotion, ((counts >> (16 * slot)) & 65535)::INTEGER AS n
    FROM mixes, labels
)
SELECT a.emotion AS emotion_a, b.emotion AS emotion_b, sum(a.images)::BIGINT AS images
FROM per_label AS a
JOIN per_label AS b ON a.counts = b.counts AND (a.emotion < b.emotion OR (a.emotion = b.emotion AND a.n >= 2))
WHERE a.n > 0 AND b.n > 0
GROUP BY ALL
ORDER BY images DESC, emotion_a, emotion_b
