-- What the server is and what planmon may read on it, probed once per collection run.
-- shared_preload_libraries is read through pg_settings, which hides it (NULL here) from roles without
-- pg_read_all_settings instead of failing; pg_stat_statements.max is defined only once the library is
-- loaded, so it is the fallback evidence. pg_has_role(..., 'USAGE') is true for superusers too.
-- auto_explain's format and the log settings say whether executed plans can be read (executed_plans.sql).
-- reads: pg_settings, pg_extension, pg_namespace, pg_roles, current_setting()
--   (https://www.postgresql.org/docs/current/view-pg-settings.html, https://www.postgresql.org/docs/current/pgstatstatements.html)
-- minimum version: 13
-- permission: none (pg_read_all_stats is what it checks for)
/* planmon */
SELECT /* planmon */
    current_setting('server_version') AS server_version,
    current_setting('server_version_num')::int AS server_version_num,
    current_database() AS database_name,
    current_user AS user_name,
    (SELECT ps.setting FROM pg_settings AS ps WHERE ps.name = 'shared_preload_libraries')
        AS shared_preload_libraries,
    (SELECT ps.setting FROM pg_settings AS ps WHERE ps.name = 'session_preload_libraries')
        AS session_preload_libraries,
    current_setting('pg_stat_statements.max', true) AS pgss_max,
    current_setting('pg_stat_statements.track', true) AS pgss_track,
    (SELECT e.extversion FROM pg_extension AS e WHERE e.extname = 'pg_stat_statements') AS pgss_version,
    (SELECT n.nspname FROM pg_extension AS e JOIN pg_namespace AS n ON n.oid = e.extnamespace
        WHERE e.extname = 'pg_stat_statements') AS pgss_schema,
    to_regclass('pg_stat_statements') IS NOT NULL AS pgss_visible,
    EXISTS (SELECT 1 FROM pg_extension AS e WHERE e.extname = 'pg_hint_plan') AS hint_plan_installed,
    pg_has_role(current_user, 'pg_read_all_stats', 'USAGE') AS reads_all_stats,
    (SELECT r.rolsuper FROM pg_roles AS r WHERE r.rolname = current_user) AS is_superuser,
    current_setting('auto_explain.log_format', true) AS auto_explain_format,
    current_setting('log_destination') AS log_destination,
    current_setting('logging_collector') AS logging_collector,
    has_function_privilege('pg_current_logfile(text)', 'EXECUTE')
        AND has_function_privilege('pg_stat_file(text)', 'EXECUTE')
        AND has_function_privilege('pg_read_file(text, bigint, bigint)', 'EXECUTE') AS reads_server_log
