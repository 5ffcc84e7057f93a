-- Built-in probe builtin.performance_schema_state: can planmon read statement digests, as one number.
--   3 = performance_schema OFF; 2 = statements_digest consumer off, or the digest table full (new
--   statements are folded into the NULL-digest row: Performance_schema_digest_lost > 0 or rows at
--   performance_schema_digests_size); 1 = digest table at 90% or more; 0 = fine.
-- reads: @@performance_schema, @@performance_schema_digests_size, performance_schema.setup_consumers,
--   performance_schema.events_statements_summary_by_digest, performance_schema.global_status
--   (https://dev.mysql.com/doc/refman/8.0/en/performance-schema-statement-digests.html)
-- minimum version: MySQL 8.0, MariaDB 10.6
-- permission: SELECT on performance_schema.*
/* planmon */ SELECT planmon.performance_schema_state
FROM (
    SELECT CASE
        WHEN @@performance_schema = 0 THEN 3
        WHEN (SELECT COUNT(*) FROM performance_schema.setup_consumers AS c
               WHERE c.NAME = 'statements_digest' AND c.ENABLED = 'YES') = 0 THEN 2
        WHEN COALESCE((SELECT CAST(s.VARIABLE_VALUE AS UNSIGNED) FROM performance_schema.global_status AS s
               WHERE s.VARIABLE_NAME = 'Performance_schema_digest_lost'), 0) > 0 THEN 2
        WHEN @@performance_schema_digests_size > 0
             AND (SELECT COUNT(*) FROM performance_schema.events_statements_summary_by_digest)
                 >= @@performance_schema_digests_size THEN 2
        WHEN @@performance_schema_digests_size > 0
             AND (SELECT COUNT(*) FROM performance_schema.events_statements_summary_by_digest)
                 >= 0.9 * @@performance_schema_digests_size THEN 1
        ELSE 0
    END AS performance_schema_state
) AS planmon
