-- Faces of each person: each person's most confident faces (thumbnails in --html; `run --people`).
-- person (its name, else its id), person_id, rank 1..$per_person by confidence; path,
-- video_time_s, face_index, emotion, confidence; uri, frame_index, box and eye points locate the face.
SELECT coalesce(person_name, person_id) AS person, person_id, rank, path, video_time_s, face_index, emotion,
       confidence, uri, frame_index, box_x, box_y, box_w, box_h, aligned, right_eye_x, right_eye_y,
       left_eye_x, left_eye_y
FROM (
    SELECT *, row_number() OVER (PARTITION BY person_id ORDER BY confidence DESC, path, frame_index, face_index) AS rank
    FROM faces WHERE person_id IS NOT NULL
)
WHERE rank <= getvariable('per_person')
ORDER BY CAST(substr(person_id, 2) AS INTEGER), rank
