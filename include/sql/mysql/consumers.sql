-- What: which performance_schema consumers are on; planmon needs global_instrumentation and
--   statements_digest (runtime stats) and, where the digest table has no sample text (MariaDB),
--   thread_instrumentation, events_statements_current and events_statements_history_long (sample
--   texts to EXPLAIN). planmon never changes them.
-- reads: performance_schema.setup_consumers (https://dev.mysql.com/doc/refman/8.0/en/performance-schema-setup-consumers-table.html)
-- minimum version: MySQL 8.0, MariaDB 10.6
-- permission: SELECT on performance_schema.*
/* planmon */ SELECT planmon.NAME AS name, planmon.ENABLED AS enabled
FROM performance_schema.setup_consumers AS planmon
