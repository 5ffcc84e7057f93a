-- Built-in probe builtin.pg_stat_statements_present: is pg_stat_statements usable in this database?
--   2 = preloaded (shared_preload_libraries) and the extension created here; 1 = only one of both;
--   0 = neither. planmon needs 2; it never creates the extension itself.
-- reads: pg_extension, the shared_preload_libraries setting
--        (https://www.postgresql.org/docs/current/pgstatstatements.html)
-- minimum version: 13
-- permission: none
/* planmon */ SELECT
    (SELECT count(*) FROM pg_extension AS e WHERE e.extname = 'pg_stat_statements')
    + CASE WHEN current_setting('shared_preload_libraries') LIKE '%pg_stat_statements%' THEN 1 ELSE 0 END
    AS pg_stat_statements_ready
