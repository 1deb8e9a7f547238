-- Per person over time: each person's emotion shares per year-month of the EXIF time (`run --people`).
-- person_id, name, month (first day; photos without an EXIF time left out), faces, dominant_emotion
-- (ties: alphabetical first); then the share of each emotion in that person's faces that month.
WITH t AS (
    SELECT person_id, person_name, date_trunc('month', taken_at)::DATE AS month, emotion FROM faces
    WHERE person_id IS NOT NULL AND taken_at IS NOT NULL
),
counts AS (
    SELECT person_id, any_value(person_name) AS name, month, emotion, count(*) AS n
    FROM t GROUP BY person_id, month, emotion
),
summary AS (
    SELECT person_id, any_value(name) AS name, month, sum(n) AS faces,
           arg_max(emotion, n * 1000000 - ascii(emotion)) AS dominant_emotion
    FROM counts GROUP BY person_id, month
),
shares AS (
    PIVOT (SELECT person_id, month, emotion, n / sum(n) OVER (PARTITION BY person_id, month) AS share FROM counts)
    ON emotion USING coalesce(sum(share), 0) GROUP BY person_id, month
)
SELECT s.person_id, s.name, s.month, s.faces, s.dominant_emotion, p.* EXCLUDE (person_id, month)
FROM summary AS s JOIN shares AS p USING (person_id, month)
ORDER BY CAST(substr(s.person_id, 2) AS INTEGER), s.month
