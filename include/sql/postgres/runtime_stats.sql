-- Cumulative counters of the top statements by total execution time, one row per (queryid, database):
-- entries of the same statement run by several roles (userid) or both top-level and nested are summed.
-- pg_stat_statements has no CPU time; the sum of squared durations is rebuilt from calls, mean and
-- (population) standard deviation so that the collector can derive the variance of a delta.
-- Excluded: planmon's own statements (%(marker_pattern)s), utility noise matched by %(utility_pattern)s
-- (transaction control, SET/SHOW/...), entries without a queryid (<insufficient privilege>) and entries
-- that never finished a call. %(databases)s empty means every database.
-- reads: pg_stat_statements, pg_database (https://www.postgresql.org/docs/current/pgstatstatements.html)
-- minimum version: 13 (total_exec_time)
-- permission: pg_read_all_stats (or superuser) to see the statements of other roles
/* planmon */
SELECT /* planmon */
    s.queryid::text AS query_key,
    d.datname AS database_name,
    sum(s.calls) AS calls,
    sum(s.total_exec_time) AS total_exec_ms,
    sum(s.calls * (s.stddev_exec_time * s.stddev_exec_time + s.mean_exec_time * s.mean_exec_time))
        AS exec_ms_sum_squares,
    min(s.min_exec_time) AS min_exec_ms,
    max(s.max_exec_time) AS max_exec_ms,
    sum(s.shared_blks_hit + s.shared_blks_read) AS shared_blks_accessed,
    sum(s.shared_blks_read) AS shared_blks_read,
    sum(s.rows) AS rows,
    min(s.query) AS query_text,
    statement_timestamp() AS read_at
FROM pg_stat_statements AS s
JOIN pg_database AS d ON d.oid = s.dbid
WHERE
    s.queryid IS NOT NULL
    AND s.calls > 0
    AND s.query NOT LIKE %(marker_pattern)s
    AND s.query !~* %(utility_pattern)s
    AND (cardinality(%(databases)s::text[]) = 0 OR d.datname = ANY(%(databases)s::text[]))
GROUP BY s.queryid, d.datname
ORDER BY sum(s.total_exec_time) DESC, s.queryid, d.datname
LIMIT %(limit)s
