-- What: server version and flavor (MySQL or MariaDB), whether performance_schema is on, the size of the
--   statement digest table, and which optional digest columns this version has (SUM_CPU_TIME, MySQL
--   8.0.28+; QUERY_SAMPLE_TEXT, MySQL 8.0.3+), so the adapter picks the matching statistics query.
-- reads: @@version, @@version_comment, @@performance_schema, @@performance_schema_digests_size,
--   information_schema.COLUMNS (https://dev.mysql.com/doc/refman/8.0/en/performance-schema-statement-summary-tables.html)
-- minimum version: MySQL 8.0, MariaDB 10.6
-- permission: none (information_schema shows only the columns of tables the user may read)
/* planmon */ SELECT
    planmon.version,
    planmon.version_comment,
    planmon.performance_schema,
    planmon.digests_size,
    planmon.has_cpu_time,
    planmon.has_sample_text
FROM (
    SELECT
        VERSION() AS version,
        @@version_comment AS version_comment,
        @@performance_schema AS performance_schema,
        @@performance_schema_digests_size AS digests_size,
        (SELECT COUNT(*) FROM information_schema.COLUMNS AS c
          WHERE c.TABLE_SCHEMA = 'performance_schema'
            AND c.TABLE_NAME = 'events_statements_summary_by_digest'
            AND c.COLUMN_NAME = 'SUM_CPU_TIME') AS has_cpu_time,
        (SELECT COUNT(*) FROM information_schema.COLUMNS AS c
          WHERE c.TABLE_SCHEMA = 'performance_schema'
            AND c.TABLE_NAME = 'events_statements_summary_by_digest'
            AND c.COLUMN_NAME = 'QUERY_SAMPLE_TEXT') AS has_sample_text
) AS planmon
