-- Trend over time: emotion shares per year-month of the EXIF time (photos without one left out).
-- month: first day of the month; faces; happy_trend: least-squares slope of the happy share
-- per month across the archive (same on every row); one share column per emotion.
WITH t AS (
    SELECT date_trunc('month', taken_at)::DATE AS month, emotion FROM faces WHERE taken_at IS NOT NULL
),
s AS (
    SELECT month, emotion, count(*) / sum(count(*)) OVER (PARTITION BY month) AS share,
           sum(count(*)) OVER (PARTITION BY month) AS faces
    FROM t GROUP BY month, emotion
),
happy AS (
    SELECT regr_slope(coalesce(h.share, 0), datediff('month', DATE '2000-01-01', m.month)) AS slope
    FROM (SELECT DISTINCT month FROM s) AS m
    LEFT JOIN (SELECT month, share FROM s WHERE emotion = 'happy') AS h USING (month)
)
SELECT p.*, (SELECT slope FROM happy) AS happy_trend
FROM (PIVOT s ON emotion USING coalesce(sum(share), 0) GROUP BY month, faces) AS p
ORDER BY month
