-- What: the sample statement text MySQL keeps per digest (QUERY_SAMPLE_TEXT, the statement with the
--   longest wait seen), for the digests planmon wants a plan of: the text planmon EXPLAINs.
--   :digests is a JSON array of digests (one query for all of them).
-- reads: performance_schema.events_statements_summary_by_digest
--   (https://dev.mysql.com/doc/refman/8.0/en/performance-schema-statement-summary-tables.html)
-- minimum version: MySQL 8.0.3 (QUERY_SAMPLE_TEXT; MariaDB has none: see history_samples.sql)
-- permission: SELECT on performance_schema.*
/* planmon */ SELECT
    planmon.DIGEST AS digest,
    planmon.SCHEMA_NAME AS schema_name,
    planmon.QUERY_SAMPLE_TEXT AS sql_text
FROM performance_schema.events_statements_summary_by_digest AS planmon
WHERE planmon.DIGEST IN (
        SELECT listed.digest
        FROM JSON_TABLE(:digests, '$[*]' COLUMNS (digest VARCHAR(64) PATH '$')) AS listed
    )
  AND planmon.QUERY_SAMPLE_TEXT IS NOT NULL
