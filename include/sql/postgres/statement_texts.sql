-- The full, normalised text ($1 placeholders) of given statements, for EXPLAIN: used when plans are
-- captured for statements this adapter did not read itself (their stored text has literals stripped).
-- reads: pg_stat_statements, pg_database (https://www.postgresql.org/docs/current/pgstatstatements.html)
-- minimum version: 13
-- permission: pg_read_all_stats (or superuser) to see the text of other roles' statements
/* planmon */
SELECT /* planmon */
    s.queryid::text AS query_key,
    d.datname AS database_name,
    min(s.query) AS query_text
FROM pg_stat_statements AS s
JOIN pg_database AS d ON d.oid = s.dbid
WHERE s.queryid = ANY(%(queryids)s::bigint[])
GROUP BY s.queryid, d.datname
