-- Emotion shares by calendar month (1-12) of the EXIF time, all years together.
-- month NULL = faces in photos without an EXIF time; faces; one share column per emotion.
WITH t AS (SELECT month(taken_at) AS month, emotion FROM faces),
s AS (
    SELECT month, emotion, count(*) / sum(count(*)) OVER (PARTITION BY month) AS share,
           sum(count(*)) OVER (PARTITION BY month) AS faces
    FROM t GROUP BY month, emotion
)
PIVOT s ON emotion USING coalesce(sum(share), 0) GROUP BY month, faces ORDER BY month NULLS LAST
