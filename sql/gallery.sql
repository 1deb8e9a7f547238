-- Example faces per emotion: the most confident faces of each emotion (thumbnails in --html).
-- emotion; rank 1..$per_emotion by confidence; path, video_time_s (video frames), face_index,
-- confidence; uri, frame_index, box and eye points locate the face in the original image.
WITH floors AS (
    -- the most confident faces of an emotion are among those at or above its $per_emotion-th
    -- highest confidence (ties included): one pass finds it, and only those few are sorted
    SELECT emotion, list_min(max(confidence, getvariable('per_emotion'))) AS floor
    FROM faces
    GROUP BY emotion
)
SELECT emotion, rank, path, video_time_s, face_index, confidence, uri, frame_index, box_x, box_y, box_w, box_h,
       aligned, right_eye_x, right_eye_y, left_eye_x, left_eye_y
FROM (
    SELECT *, row_number() OVER (PARTITION BY emotion ORDER BY confidence DESC, path, frame_index, face_index) AS rank
    FROM faces JOIN floors USING (emotion)
    WHERE confidence >= floor
)
WHERE rank <= getvariable('per_emotion')
ORDER BY emotion, rank
