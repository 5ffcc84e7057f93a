-- What: cumulative statement statistics per (schema, digest), top N by total time, for the collector to
--   turn two readings into a delta. Leaves out planmon's own statements: every planmon query starts
--   `SELECT planmon.` (its digest text starts "SELECT `planmon` ."), and EXPLAIN statements (planmon's plan
--   captures; an EXPLAIN has no plan of its own to watch). Statements of planmon's own sessions that are
--   not queries (SET) are dropped by the adapter from own_statement_digests.
--   :databases is a JSON array of schema names ([] = every schema); :row_limit is N plus the number of
--   own digests the adapter drops afterwards.
-- reads: performance_schema.events_statements_summary_by_digest
--   (https://dev.mysql.com/doc/refman/8.0/en/performance-schema-statement-summary-tables.html)
--   This variant has no per-statement CPU time (MariaDB, MySQL before 8.0.28): cpu_time_sum is NULL.
-- minimum version: MySQL 8.0, MariaDB 10.6 (JSON_TABLE)
-- permission: SELECT on performance_schema.*
/* planmon */ SELECT
    planmon.SCHEMA_NAME AS schema_name,
    planmon.DIGEST AS digest,
    planmon.DIGEST_TEXT AS digest_text,
    planmon.COUNT_STAR AS executions,
    planmon.SUM_ERRORS AS errors,
    planmon.SUM_TIMER_WAIT AS timer_wait_sum,
    planmon.MIN_TIMER_WAIT AS timer_wait_min,
    planmon.MAX_TIMER_WAIT AS timer_wait_max,
    planmon.SUM_ROWS_EXAMINED AS rows_examined,
    planmon.SUM_ROWS_SENT AS rows_sent,
    planmon.SUM_ROWS_AFFECTED AS rows_affected,
    NULL AS cpu_time_sum
FROM performance_schema.events_statements_summary_by_digest AS planmon
WHERE planmon.DIGEST IS NOT NULL
  AND planmon.DIGEST_TEXT NOT LIKE 'SELECT `planmon` .%'
  AND planmon.DIGEST_TEXT NOT LIKE 'EXPLAIN %'
  AND (
        JSON_LENGTH(:databases) = 0
        OR planmon.SCHEMA_NAME IN (
            SELECT listed.name
            FROM JSON_TABLE(:databases, '$[*]' COLUMNS (name VARCHAR(64) PATH '$')) AS listed
        )
    )
ORDER BY planmon.SUM_TIMER_WAIT DESC
LIMIT :row_limit
