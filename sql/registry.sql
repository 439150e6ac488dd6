-- The registry in Spark SQL, through the connector's Cassandra catalog `cass` (conf/spark/local.conf):
--   scripts/sql.sh -f sql/registry.sql
-- Tables are cass.<keyspace>.<table>; mnist_digits is the mnist dataset's keyspace.

-- 1. Best model by test accuracy (ties: lower loss)
SELECT id, architecture, round(test_accuracy, 4) AS accuracy, round(test_loss, 4) AS loss, upload_date
FROM cass.mnist_digits.models
ORDER BY test_accuracy DESC, test_loss ASC
LIMIT 1;

-- 2. Best model by lowest test loss
SELECT id, architecture, round(test_loss, 4) AS loss, round(test_accuracy, 4) AS accuracy, upload_date
FROM cass.mnist_digits.models
ORDER BY test_loss ASC, test_accuracy DESC
LIMIT 1;

-- 3. The dataset's models over time, with the best accuracy reached so far
SELECT upload_date, id, architecture, round(test_accuracy, 4) AS accuracy, round(test_loss, 4) AS loss,
       round(max(test_accuracy) OVER (PARTITION BY dataset ORDER BY upload_date), 4) AS best_so_far,
       round(train_seconds, 1) AS train_s
FROM cass.mnist_digits.models
WHERE dataset = 'mnist'
ORDER BY upload_date;

-- 4. Per-class accuracy of the champion (model_classes is written with every model)
SELECT c.class, c.class_name, round(c.accuracy, 4) AS accuracy, round(c.precision, 4) AS precision,
       round(c.f1, 4) AS f1, c.support
FROM (SELECT DISTINCT model_id FROM cass.mnist_digits.aliases WHERE alias = 'champion') champion
JOIN cass.mnist_digits.model_classes c ON c.model_id = champion.model_id
ORDER BY c.class;

-- 4b. The same straight from the champion's metrics JSON (per-class recall = per-class accuracy)
SELECT class, round(accuracy, 4) AS accuracy
FROM (SELECT DISTINCT model_id FROM cass.mnist_digits.aliases WHERE alias = 'champion') champion
JOIN cass.mnist_digits.models m ON m.id = champion.model_id
LATERAL VIEW posexplode(from_json(get_json_object(m.metrics, '$.per_class.recall'), 'array<double>')) t AS class, accuracy
ORDER BY class;

-- 5. The champion's history: when, from, to, why
SELECT changed_at, from_model, to_model, reason, changed_by
FROM cass.mnist_digits.aliases
WHERE alias = 'champion' AND to_model IS NOT NULL
ORDER BY changed_at;

-- 6. What the predict job wrote: rows per model and table, and accuracy where rows have labels
SELECT model_id, source, count(*) AS rows, count(label) AS labelled,
       round(avg(CASE WHEN label IS NOT NULL THEN CAST(label = predicted AS INT) END), 4) AS accuracy,
       max(predicted_at) AS predicted_at
FROM cass.mnist_digits.predictions
GROUP BY model_id, source
ORDER BY model_id, source;
