-- What: how full the statement digest table is and whether digests were lost because it was full
--   (statements that do not fit are folded into one NULL-digest row and counted as lost).
-- reads: performance_schema.events_statements_summary_by_digest, performance_schema.global_status
--   (Performance_schema_digest_lost; https://dev.mysql.com/doc/refman/8.0/en/performance-schema-status-variables.html)
-- minimum version: MySQL 8.0, MariaDB 10.6
-- permission: SELECT on performance_schema.*
/* planmon */ SELECT planmon.digest_rows, planmon.digest_lost
FROM (
    SELECT
        (SELECT COUNT(*) FROM performance_schema.events_statements_summary_by_digest) AS digest_rows,
        (SELECT s.VARIABLE_VALUE FROM performance_schema.global_status AS s
          WHERE s.VARIABLE_NAME = 'Performance_schema_digest_lost') AS digest_lost
) AS planmon
