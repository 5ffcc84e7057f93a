-- Session settings of every connection planmon opens to a monitored PostgreSQL: a statement timeout, a
-- short lock timeout (planmon never waits long in a lock queue behind DDL, where it would block the
-- application too), application_name 'planmon', and read-only transactions by default.
-- set_config(..., false) is SET for the session: nothing is written to the server or its configuration.
-- reads: nothing; sets session settings only (https://www.postgresql.org/docs/current/functions-admin.html#FUNCTIONS-ADMIN-SET)
-- minimum version: 13
-- permission: none (any role may change these settings for its own session)
/* planmon */
SELECT /* planmon */
    set_config('statement_timeout', %(statement_timeout)s, false) AS statement_timeout,
    set_config('lock_timeout', %(lock_timeout)s, false) AS lock_timeout,
    set_config('application_name', 'planmon', false) AS application_name,
    set_config('default_transaction_read_only', 'on', false) AS default_transaction_read_only
