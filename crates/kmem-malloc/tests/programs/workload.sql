-- An in-memory sqlite3 workload: a few hundred thousand rows, indexes, updates, VACUUM.
CREATE TABLE t(id INTEGER PRIMARY KEY, a INTEGER, b TEXT, c REAL);
WITH RECURSIVE seq(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM seq WHERE x < 200000)
INSERT INTO t(a, b, c) SELECT (x * 7919) % 100003, printf('row-%08d-%s', x, hex(x * 31)), x / 3.0 FROM seq;
CREATE INDEX t_a ON t(a);
CREATE INDEX t_b ON t(b);
UPDATE t SET b = b || '-updated', c = c * 2 WHERE a % 3 = 0;
DELETE FROM t WHERE a % 10 = 1;
CREATE TABLE u AS SELECT a % 1000 AS k, count(*) AS n, sum(c) AS s FROM t GROUP BY a % 1000;
SELECT count(*), sum(a), min(b), max(b) FROM t;
SELECT k, n, printf('%.2f', s) FROM u ORDER BY n DESC, k LIMIT 5;
SELECT count(*) FROM t JOIN u ON t.a % 1000 = u.k WHERE u.n > 150;
VACUUM;
SELECT count(*), max(id) FROM t;
