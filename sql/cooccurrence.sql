-- Emotion co-occurrence: which emotions appear together on different faces of one image.
-- For each pair, the number of images where one face shows emotion_a and another face shows
-- emotion_b (a = b: two faces with the same one).
-- emotion_a <= emotion_b alphabetically; images: count of such images.
WITH per_image AS (SELECT image, emotion, count(*) AS n FROM faces GROUP BY image, emotion)
SELECT a.emotion AS emotion_a, b.emotion AS emotion_b, count(*) AS images
FROM per_image AS a
JOIN per_image AS b ON a.image = b.image AND (a.emotion < b.emotion OR (a.emotion = b.emotion AND a.n >= 2))
GROUP BY ALL
ORDER BY images DESC, emotion_a, emotion_b
