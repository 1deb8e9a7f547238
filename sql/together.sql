-- Together: pairs of people seen in the same photo or video frame, how often, and how they look then.
-- person_a < person_b (by number); name_a, name_b; images: photos and frames with both;
-- emotion_a, emotion_b: each one's most frequent emotion in those images (ties: alphabetical
-- first); same_emotion: share of those images where the two show the same emotion.
WITH p AS (
    SELECT DISTINCT ON (image, person_id) image, person_id, person_name, emotion FROM faces
    WHERE person_id IS NOT NULL
    ORDER BY image, person_id, confidence DESC
),
pairs AS (
    SELECT a.image, a.person_id AS person_a, b.person_id AS person_b, a.person_name AS name_a,
           b.person_name AS name_b, a.emotion AS emotion_a, b.emotion AS emotion_b
    FROM p AS a JOIN p AS b ON a.image = b.image
        AND CAST(substr(a.person_id, 2) AS INTEGER) < CAST(substr(b.person_id, 2) AS INTEGER)
),
mode_a AS (
    SELECT person_a, person_b, arg_max(emotion_a, n * 1000000 - ascii(emotion_a)) AS emotion_a
    FROM (SELECT person_a, person_b, emotion_a, count(*) AS n FROM pairs GROUP BY ALL) GROUP BY ALL
),
mode_b AS (
    SELECT person_a, person_b, arg_max(emotion_b, n * 1000000 - ascii(emotion_b)) AS emotion_b
    FROM (SELECT person_a, person_b, emotion_b, count(*) AS n FROM pairs GROUP BY ALL) GROUP BY ALL
)
SELECT person_a, person_b, any_value(name_a) AS name_a, any_value(name_b) AS name_b,
       count(*) AS images, any_value(m.emotion_a) AS emotion_a, any_value(n.emotion_b) AS emotion_b,
       avg((pairs.emotion_a = pairs.emotion_b)::INTEGER) AS same_emotion
FROM pairs JOIN mode_a AS m USING (person_a, person_b) JOIN mode_b AS n USING (person_a, person_b)
GROUP BY person_a, person_b
ORDER BY images DESC, person_a, person_b
