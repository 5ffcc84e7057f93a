-- What: the digests of the statements this connection has run so far (the driver's SET NAMES, autocommit
--   and sql_mode statements, planmon's session SETs), so runtime_stats can leave planmon's own
--   statements out: their texts are the same in every run, so their digests are too. Comments (the
--   planmon marker) are not part of a digest, hence this lookup. The per-thread history keeps only the
--   last few statements (10 by default) and the driver sends extra ones, so the long history (a global
--   ring) is read too.
-- reads: performance_schema.events_statements_history, performance_schema.events_statements_history_long,
--   performance_schema.threads
--   (https://dev.mysql.com/doc/refman/8.0/en/performance-schema-events-statements-history-table.html)
-- minimum version: MySQL 8.0, MariaDB 10.6 (needs the events_statements_history[_long] consumers)
-- permission: SELECT on performance_schema.*
/* planmon */ SELECT planmon.DIGEST AS digest
FROM performance_schema.events_statements_history AS planmon
WHERE planmon.THREAD_ID = (
        SELECT t.THREAD_ID FROM performance_schema.threads AS t WHERE t.PROCESSLIST_ID = CONNECTION_ID()
    )
  AND planmon.DIGEST IS NOT NULL
UNION
SELECT planmon.DIGEST AS digest
FROM performance_schema.events_statements_history_long AS planmon
WHERE planmon.THREAD_ID = (
        SELECT t.THREAD_ID FROM performance_schema.threads AS t WHERE t.PROCESSLIST_ID = CONNECTION_ID()
    )
  AND planmon.DIGEST IS NOT NULL
