-- Group photos: images (photos and video frames) with two or more faces, and how often everyone shows the same emotion.
-- group_photos: images with 2+ faces; all_agree: of those, images whose faces share one top
-- emotion; agree_share = all_agree / group_photos; mean_faces: mean faces per group photo.
WITH per_image AS (
    -- an image is (uri, frame_index); its faces agree when their first and last emotion are one
    SELECT count(*) AS n, min(emotion) = max(emotion) AS agree
    FROM faces GROUP BY uri, frame_index HAVING count(*) >= 2
)
SELECT
    count(*) AS group_photos,
    count(*) FILTER (agree) AS all_agree,
    count(*) FILTER (agree) / nullif(count(*), 0) AS agree_share,
    avg(n) AS mean_faces
FROM per_image
