-- Example faces per emotion: the most confident faces of each emotion (thumbnails in --html).
-- emotion; rank 1..$per_emotion by confidence; path, face_index, confidence; uri and box
-- locate the face in the original image.
SELECT emotion, rank, path, face_index, confidence, uri, box_x, box_y, box_w, box_h
FROM (
    SELECT *, row_number() OVER (PARTITION BY emotion ORDER BY confidence DESC, path, face_index) AS rank
    FROM faces
)
WHERE rank <= getvariable('per_emotion')
ORDER BY emotion, rank
