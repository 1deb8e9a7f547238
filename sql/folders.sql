-- Per folder (album, event): its emotion mix and how unusual it is against the whole archive.
-- faces; dominant_emotion and dominant_share (ties: alphabetical first);
-- chi_square: Pearson chi-square of the folder's emotion counts against the counts the
-- archive-wide shares predict (higher = more unusual; ranked by it);
-- kl_bits: Kullback-Leibler divergence KL(folder || archive) in bits;
-- then the share of each emotion in the folder.
WITH counts AS (
    SELECT folder, emotion, count(*) AS n FROM faces GROUP BY folder, emotion
),
archive AS (
    SELECT emotion, sum(n) / (SELECT sum(n) FROM counts) AS share FROM counts GROUP BY emotion
),
grid AS (
    SELECT f.folder, f.total, a.emotion, a.share AS archive_share, coalesce(c.n, 0) AS n
    FROM (SELECT folder, sum(n) AS total FROM counts GROUP BY folder) AS f
    CROSS JOIN archive AS a
    LEFT JOIN counts AS c ON c.folder = f.folder AND c.emotion = a.emotion
),
scores AS (
    SELECT
        folder,
        any_value(total) AS faces,
        arg_max(emotion, n * 1000000 - ascii(emotion)) AS dominant_emotion,
        max(n) / any_value(total) AS dominant_share,
        sum((n - total * archive_share) ^ 2 / (total * archive_share)) AS chi_square,
        sum(CASE WHEN n > 0 THEN n / total * log2(n / total / archive_share) ELSE 0 END) AS kl_bits
    FROM grid
    GROUP BY folder
),
shares AS (
    PIVOT (SELECT folder, emotion, n / total AS share FROM grid) ON emotion USING coalesce(sum(share), 0)
)
SELECT scores.*, shares.* EXCLUDE (folder)
FROM scores JOIN shares USING (folder)
ORDER BY chi_square DESC, folder
