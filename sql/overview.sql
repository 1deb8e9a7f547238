-- Overview: how much of the archive was mined, and what went wrong.
-- metric: what is counted; value: the count. Rows "errors: <kind>" break errors down by kind.
SELECT metric, value FROM (
    SELECT 'images' AS metric, count(*) AS value, 1 AS ord FROM images
    UNION ALL SELECT 'of which video frames', count(frame_index), 1.1 FROM images
    UNION ALL SELECT 'videos', count(*), 1.2 FROM videos
    UNION ALL SELECT 'faces', count(*), 2 FROM faces
    UNION ALL SELECT 'images without faces', count(*) FILTER (face_count = 0), 3 FROM images
    UNION ALL SELECT 'group photos (2+ faces)', count(*) FILTER (face_count >= 2), 4 FROM images
    UNION ALL SELECT 'images with an EXIF time', count(taken_at), 5 FROM images
    UNION ALL SELECT 'errors', count(*), 6 FROM errors
    UNION ALL (SELECT 'errors: ' || kind, count(*), 7 FROM errors GROUP BY kind ORDER BY kind)
)
ORDER BY ord, metric
