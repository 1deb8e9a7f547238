-- Emotion shares by hour of day (EXIF DateTimeOriginal, camera local time).
-- hour 0-23, NULL = faces in photos without an EXIF time (counted apart);
-- faces: faces in that hour; one column per emotion: its share of those faces.
WITH t AS (SELECT hour(taken_at) AS hour, emotion FROM faces),
s AS (
    SELECT hour, emotion, count(*) / sum(count(*)) OVER (PARTITION BY hour) AS share,
           sum(count(*)) OVER (PARTITION BY hour) AS faces
    FROM t GROUP BY hour, emotion
)
PIVOT s ON emotion USING coalesce(sum(share), 0) GROUP BY hour, faces ORDER BY hour NULLS LAST
