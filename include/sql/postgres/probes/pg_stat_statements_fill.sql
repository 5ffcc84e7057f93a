-- Built-in probe builtin.pg_stat_statements_fill: percent of pg_stat_statements.max in use. At 100%
--   the least-used entries are evicted (pg_stat_statements_info.dealloc rises) and their statistics
--   are lost between two collections; raise pg_stat_statements.max (restart) before that.
--   Fails (probe error) where the extension is not created: builtin.pg_stat_statements_present says why.
-- reads: pg_stat_statements, the pg_stat_statements.max setting
--        (https://www.postgresql.org/docs/current/pgstatstatements.html)
-- minimum version: 13
-- permission: pg_read_all_stats (to see every role's statements)
/* planmon */ SELECT
    round(100.0 * (SELECT count(*) FROM pg_stat_statements)
          / current_setting('pg_stat_statements.max')::numeric, 1) AS percent_of_max
