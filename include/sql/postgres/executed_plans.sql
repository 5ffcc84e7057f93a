-- The plans auto_explain logged for given statements since a moment: the executed plans, preferred
-- over EXPLAIN's generic guess. auto_explain must log JSON (auto_explain.log_format = json) through
-- the jsonlog destination (log_destination includes jsonlog, logging_collector = on): one JSON record
-- per line, with dbname, query_id and timestamp. Only the last %(max_bytes)s bytes of the current
-- file are read; the first line of a tail that starts mid-file and the last piece (empty, or a line
-- still being written) are dropped before any line is read as JSON. Rows come in the file's order.
-- reads: pg_current_logfile(), pg_stat_file(), pg_read_file() (https://www.postgresql.org/docs/current/auto-explain.html,
--   https://www.postgresql.org/docs/current/runtime-config-logging.html#RUNTIME-CONFIG-LOGGING-JSONLOG)
-- minimum version: 15 (jsonlog)
-- permission: EXECUTE on pg_current_logfile(text), pg_stat_file(text) and pg_read_file(text, bigint, bigint)
--   (superusers have it; docs/collection.md has the GRANTs)
/* planmon */
WITH /* planmon */ log_file AS (
    SELECT pg_current_logfile('jsonlog') AS path
),
tail AS (
    SELECT
        greatest(f.size - %(max_bytes)s, 0) AS start_at,
        pg_read_file(l.path, greatest(f.size - %(max_bytes)s, 0), %(max_bytes)s) AS text
    FROM log_file AS l
    CROSS JOIN LATERAL pg_stat_file(l.path) AS f
    WHERE l.path IS NOT NULL
),
pieces AS (
    SELECT t.start_at, x.line, x.n, count(*) OVER () AS total
    FROM tail AS t
    CROSS JOIN LATERAL regexp_split_to_table(t.text, E'\n') WITH ORDINALITY AS x(line, n)
),
entries AS MATERIALIZED (
    SELECT p.n, p.line::jsonb AS entry
    FROM pieces AS p
    WHERE p.n < p.total AND (p.n > 1 OR p.start_at = 0) AND strpos(p.line, 'plan:') > 0
)
SELECT
    e.entry ->> 'dbname' AS database_name,
    e.entry ->> 'query_id' AS query_key,
    (e.entry ->> 'timestamp')::timestamptz AS logged_at,
    e.entry ->> 'message' AS message
FROM entries AS e
WHERE
    e.entry ->> 'query_id' = ANY(%(queryids)s::text[])
    AND (e.entry ->> 'timestamp')::timestamptz >= %(since)s
ORDER BY e.n
