-- Emotion shares by weekday (ISO: 1 = Monday ... 7 = Sunday) of the EXIF time.
-- weekday NULL = faces in photos without an EXIF time; faces; one share column per emotion.
WITH t AS (SELECT isodow(taken_at) AS weekday, dayname(taken_at) AS day, emotion FROM faces),
s AS (
    SELECT weekday, day, emotion, count(*) / sum(count(*)) OVER (PARTITION BY weekday) AS share,
           sum(count(*)) OVER (PARTITION BY weekday) AS faces
    FROM t GROUP BY weekday, day, emotion
)
PIVOT s ON emotion USING coalesce(sum(share), 0) GROUP BY weekday, day, faces ORDER BY weekday NULLS LAST
