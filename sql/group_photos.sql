-- Group photos: images (photos and video frames) with two or more faces, and how often everyone shows the same emotion.
-- group_photos: images with 2+ faces; all_agree: of those, images whose faces share one top
-- emotion; agree_share = all_agree / group_photos; mean_faces: mean faces per group photo.
WITH per_image AS (
    SELECT image, count(*) AS n, count(DISTINCT emotion) AS distinct_emotions
    FROM faces GROUP BY image HAVING count(*) >= 2
)
SELECT
    count(*) AS group_photos,
    count(*) FILTER (distinct_emotions = 1) AS all_agree,
    count(*) FILTER (distinct_emotions = 1) / nullif(count(*), 0) AS agree_share,
    avg(n) AS mean_faces
FROM per_image
