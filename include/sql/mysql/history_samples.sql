-- What: the most recent statement text per (digest, schema) from the long statement history, for the
--   digests planmon wants a plan of (MariaDB keeps no sample text in the digest table). planmon's own
--   statements (marker) are skipped. :digests is a JSON array of digests (one query for all of them).
-- reads: performance_schema.events_statements_history_long
--   (https://mariadb.com/kb/en/performance-schema-events_statements_history_long-table/)
-- minimum version: MySQL 8.0, MariaDB 10.6 (needs the events_statements_history_long consumer)
-- permission: SELECT on performance_schema.*
/* planmon */ SELECT
    planmon.digest,
    planmon.schema_name,
    planmon.sql_text
FROM (
    SELECT
        h.DIGEST AS digest,
        h.CURRENT_SCHEMA AS schema_name,
        h.SQL_TEXT AS sql_text,
        ROW_NUMBER() OVER (PARTITION BY h.DIGEST, h.CURRENT_SCHEMA ORDER BY h.TIMER_START DESC) AS recency
    FROM performance_schema.events_statements_history_long AS h
    WHERE h.DIGEST IN (
            SELECT listed.digest
            FROM JSON_TABLE(:digests, '$[*]' COLUMNS (digest VARCHAR(64) PATH '$')) AS listed
        )
      AND h.SQL_TEXT IS NOT NULL
      AND h.SQL_TEXT NOT LIKE '/* planmon */%'
) AS planmon
WHERE planmon.recency = 1
