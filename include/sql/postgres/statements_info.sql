-- pg_stat_statements' own bookkeeping: how many entries were evicted (dealloc) and when all counters
-- were last reset. Fails with SQLSTATE 55000 when the library is not in shared_preload_libraries.
-- reads: pg_stat_statements_info (https://www.postgresql.org/docs/current/pgstatstatements.html#PGSTATSTATEMENTS-PG-STAT-STATEMENTS-INFO)
-- minimum version: 14 (pg_stat_statements 1.9)
-- permission: none (SELECT is granted to PUBLIC)
/* planmon */
SELECT /* planmon */
    i.dealloc AS dealloc,
    i.stats_reset AS stats_reset
FROM pg_stat_statements_info AS i
