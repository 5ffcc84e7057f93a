-- Whether the connected user holds VIEW DATABASE STATE in the current database (Query Store views need it).
-- Run in each monitored database before anything that needs the permission, so a missing grant becomes a
-- per-aspect status with a hint instead of error 229/300 in the middle of a collection.
-- reads: HAS_PERMS_BY_NAME (https://learn.microsoft.com/sql/t-sql/functions/has-perms-by-name-transact-sql)
-- minimum version: SQL Server 2016 (13.x)
-- permission: none
/* planmon */
SELECT /* planmon */
    DB_NAME() AS database_name,
    HAS_PERMS_BY_NAME(DB_NAME(), 'DATABASE', 'VIEW DATABASE STATE') AS has_view_database_state;
