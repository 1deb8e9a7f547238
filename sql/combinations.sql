-- Frequent emotion combinations per image (itemsets of 2 and 3 emotions, market-basket style).
-- Over images with at least one face: itemset: emotions present together ('+'-joined);
-- images: images containing all of them; support: images / images with faces;
-- lift: support / product of each emotion's own support (> 1: they appear together more than
-- chance would have it). Itemsets seen in fewer than $min_images images are left out.
WITH labels AS (
    SELECT emotion, (row_number() OVER (ORDER BY emotion) - 1)::INTEGER AS slot
    FROM (SELECT DISTINCT emotion FROM faces)
),
-- one bit per emotion present in an image (uri, frame_index); images with the same set together
sets_seen AS (
    SELECT present, count(*) AS images
    FROM (SELECT bit_or(1 << slot) AS present FROM faces JOIN labels USING (emotion) GROUP BY uri, frame_index)
    GROUP BY present
),
items AS (
    SELECT present, images, emotion, slot FROM sets_seen JOIN labels ON present & (1 << slot) <> 0
),
total AS (SELECT sum(images) AS n FROM sets_seen),
single AS (SELECT emotion, sum(images) / (SELECT n FROM total) AS support FROM items GROUP BY emotion),
pairs AS (
    SELECT a.emotion AS e1, b.emotion AS e2, NULL AS e3, sum(a.images) AS images
    FROM items AS a JOIN items AS b ON a.present = b.present AND a.emotion < b.emotion
    GROUP BY ALL
),
triples AS (
    SELECT a.emotion, b.emotion, c.emotion, sum(a.images)
    FROM items AS a
    JOIN items AS b ON a.present = b.present AND a.emotion < b.emotion
    JOIN items AS c ON b.present = c.present AND b.emotion < c.emotion
    GROUP BY ALL
),
sets AS (SELECT * FROM pairs UNION ALL SELECT * FROM triples)
SELECT
    concat_ws('+', e1, e2, e3) AS itemset,
    images::BIGINT AS images,
    images / (SELECT n FROM total) AS support,
    images / (SELECT n FROM total)
        / (s1.support * s2.support * coalesce(s3.support, 1)) AS lift
FROM sets
JOIN single AS s1 ON s1.emotion = e1
JOIN single AS s2 ON s2.emotion = e2
LEFT JOIN single AS s3 ON s3.emotion = e3
WHERE images >= getvariable('min_images')
ORDER BY images DESC, lift DESC, itemset
