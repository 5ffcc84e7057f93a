-- The probe login's server roles and server/database permissions a probe must not have
--   (planmon.engines.sqlserver.probe_privileges decides; docs/probes.md, "The probe login").
--   Each flag is 1 when the login holds it, directly, through a role or through CONTROL SERVER;
--   NULL (an unknown role or permission) counts as not held. The database ones are for the
--   connection's current database: the one the probe runs in.
-- reads: IS_SRVROLEMEMBER, HAS_PERMS_BY_NAME, IS_ROLEMEMBER
--   (https://learn.microsoft.com/sql/t-sql/functions/is-srvrolemember-transact-sql,
--    https://learn.microsoft.com/sql/t-sql/functions/has-perms-by-name-transact-sql)
-- minimum version: SQL Server 2016 (13.x)
-- permission: none (each function answers for the current login)
/* planmon */
SELECT /* planmon */
    SUSER_SNAME() AS login_name,
    IS_SRVROLEMEMBER('sysadmin') AS is_sysadmin,
    IS_SRVROLEMEMBER('securityadmin') AS is_securityadmin,
    HAS_PERMS_BY_NAME(NULL, NULL, 'CONTROL SERVER') AS has_control_server,
    HAS_PERMS_BY_NAME(NULL, NULL, 'ALTER ANY CONNECTION') AS has_alter_any_connection,
    HAS_PERMS_BY_NAME(NULL, NULL, 'SHUTDOWN') AS has_shutdown,
    HAS_PERMS_BY_NAME(NULL, NULL, 'ALTER SETTINGS') AS has_alter_settings,
    HAS_PERMS_BY_NAME(NULL, NULL, 'ALTER ANY LOGIN') AS has_alter_any_login,
    IS_ROLEMEMBER('db_owner') AS is_db_owner,
    HAS_PERMS_BY_NAME(DB_NAME(), 'DATABASE', 'CONTROL') AS has_control_database;
