-- Review list: the faces most worth a human look. Ordered by margin, smallest first.
-- margin: top probability minus the second (close to 0 = the model hesitates between two labels);
-- second_emotion: the runner-up label; reason: 'close call' (margin < 0.1), 'low confidence'
-- (confidence < 0.4), or both. At most $limit rows.
WITH sorted AS (
    -- only the faces that can be candidates get their probabilities sorted: a runner-up within
    -- 0.1 of the top label (two probabilities within 0.1 of the confidence, itself included),
    -- or low confidence; the runner-up is at most 1 - confidence, so none from 0.55 up qualifies
    -- (0.56: room for the rounding of probabilities stored as float32)
    SELECT *, list_sort(list_value(*COLUMNS('^p_')), 'DESC') AS ranked
    FROM faces
    WHERE confidence < 0.56
      AND (confidence < 0.4 OR len(list_filter(list_value(*COLUMNS('^p_')), lambda p: confidence - p < 0.1)) >= 2)
),
scored AS (SELECT * EXCLUDE (ranked), confidence - ranked[2] AS margin FROM sorted),
candidates AS (
    SELECT * FROM scored
    WHERE margin < 0.1 OR confidence < 0.4
    ORDER BY margin, confidence, path, frame_index, face_index
    LIMIT getvariable('limit')
),
runner_up AS (
    SELECT image, face_index, arg_max(label, p) AS label
    FROM (
        UNPIVOT (SELECT image, face_index, emotion, COLUMNS('^p_') FROM candidates)
        ON COLUMNS('^p_') INTO NAME label VALUE p
    )
    WHERE label <> 'p_' || emotion
    GROUP BY image, face_index
)
SELECT path, video_time_s, face_index, emotion, confidence, substr(runner_up.label, 3) AS second_emotion, margin,
       concat_ws(' + ', CASE WHEN margin < 0.1 THEN 'close call' END,
                        CASE WHEN confidence < 0.4 THEN 'low confidence' END) AS reason,
       uri, frame_index, box_x, box_y, box_w, box_h
FROM candidates JOIN runner_up USING (image, face_index)
ORDER BY margin, confidence, path, frame_index, face_index
