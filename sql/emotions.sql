-- Emotion distribution: how often each emotion is the top label of a face.
-- faces: number of faces; share: of all faces; mean_confidence: mean probability of that top label.
SELECT
    emotion,
    count(*) AS faces,
    count(*) / sum(count(*)) OVER () AS share,
    avg(confidence) AS mean_confidence
FROM faces
GROUP BY emotion
ORDER BY faces DESC, emotion
