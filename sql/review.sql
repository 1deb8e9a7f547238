-- Review list: the faces most worth a human look. Ordered by margin, smallest first.
-- margin: top probability minus the second (close to 0 = the model hesitates between two labels);
-- second_emotion: the runner-up label; reason: 'close call' (margin < 0.1), 'low confidence'
-- (confidence < 0.4), or both. At most $limit rows.
WITH probs AS (
    UNPIVOT (SELECT uri, path, face_index, box_x, box_y, box_w, box_h, emotion, confidence,
                    COLUMNS('^p_') FROM faces)
    ON COLUMNS('^p_') INTO NAME label VALUE p
),
ranked AS (
    SELECT *, row_number() OVER (PARTITION BY uri, face_index ORDER BY p DESC, label) AS rank FROM probs
)
SELECT path, face_index, emotion, confidence,
       substr(second.label, 3) AS second_emotion,
       confidence - second.p AS margin,
       concat_ws(' + ', CASE WHEN confidence - second.p < 0.1 THEN 'close call' END,
                        CASE WHEN confidence < 0.4 THEN 'low confidence' END) AS reason,
       uri, box_x, box_y, box_w, box_h
FROM ranked AS second
WHERE rank = 2 AND (confidence - second.p < 0.1 OR confidence < 0.4)
ORDER BY margin, confidence, path, face_index
LIMIT getvariable('limit')
