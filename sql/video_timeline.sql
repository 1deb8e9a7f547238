-- Video timelines: each video's emotion mix over time, and overall.
-- One row per stretch of $bucket_s seconds (--bucket-s). path: the video; bucket_start_s: where
-- the stretch starts, NULL on the video's overall row;
-- frames: sampled frames with faces; faces; dominant_emotion: most frequent top label (ties:
-- higher summed confidence); changes (overall row): how often the dominant emotion changes from
-- one stretch with faces to the next; then the share of each emotion among the faces.
WITH t AS (
    SELECT path, floor(video_time_s / getvariable('bucket_s')) * getvariable('bucket_s') AS bucket_start_s,
           frame_index, emotion, confidence
    FROM faces
    WHERE frame_index IS NOT NULL
),
sizes AS (
    SELECT path, bucket_start_s, count(DISTINCT frame_index) AS frames, count(*) AS faces
    FROM t
    GROUP BY GROUPING SETS ((path, bucket_start_s), (path))
),
counts AS (
    SELECT path, bucket_start_s, emotion, count(*) AS n, sum(confidence) AS confidence
    FROM t
    GROUP BY GROUPING SETS ((path, bucket_start_s, emotion), (path, emotion))
),
dominant AS (
    -- confidence / (n + 1) < 1 breaks ties in n without overriding it
    SELECT path, bucket_start_s, arg_max(emotion, n + confidence / (n + 1)) AS dominant_emotion
    FROM counts
    GROUP BY path, bucket_start_s
),
changes AS (
    SELECT path, count(*) FILTER (previous <> dominant_emotion) AS changes
    FROM (
        SELECT path, dominant_emotion,
               lag(dominant_emotion) OVER (PARTITION BY path ORDER BY bucket_start_s) AS previous
        FROM dominant
        WHERE bucket_start_s IS NOT NULL
    )
    GROUP BY path
),
shares AS (
    PIVOT (
        SELECT c.path, coalesce(c.bucket_start_s, -1) AS bucket, c.emotion, c.n / s.faces AS share
        FROM counts AS c
        JOIN sizes AS s ON s.path = c.path AND s.bucket_start_s IS NOT DISTINCT FROM c.bucket_start_s
    )
    ON emotion USING coalesce(sum(share), 0) GROUP BY path, bucket
)
SELECT s.path, s.bucket_start_s, s.frames, s.faces, d.dominant_emotion,
       CASE WHEN s.bucket_start_s IS NULL THEN ch.changes END AS changes,
       sh.* EXCLUDE (path, bucket)
FROM sizes AS s
JOIN dominant AS d ON d.path = s.path AND d.bucket_start_s IS NOT DISTINCT FROM s.bucket_start_s
JOIN shares AS sh ON sh.path = s.path AND sh.bucket = coalesce(s.bucket_start_s, -1)
JOIN changes AS ch ON ch.path = s.path
ORDER BY s.path, s.bucket_start_s NULLS FIRST
