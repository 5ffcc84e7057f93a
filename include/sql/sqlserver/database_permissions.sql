-- Whether the connected user may read Query Store in the current database: VIEW DATABASE STATE, or (SQL Server
-- 2022+) the narrower VIEW DATABASE PERFORMANCE STATE, which is all the 2022 Query Store and DMV pages require.
-- Run in each monitored database before anything that needs the permission, so a missing grant becomes a
-- per-aspect status with a hint instead of error 229/300 in the middle of a collection.
-- reads: HAS_PERMS_BY_NAME (https://learn.microsoft.com/sql/t-sql/functions/has-perms-by-name-transact-sql)
-- minimum version: SQL Server 2016 (13.x); VIEW DATABASE PERFORMANCE STATE exists from SQL Server 2022 (16.x):
--                  before that HAS_PERMS_BY_NAME returns NULL for it
-- permission: none
/* planmon */
SELECT /* planmon */
    DB_NAME() AS database_name,
    HAS_PERMS_BY_NAME(DB_NAME(), 'DATABASE', 'VIEW DATABASE STATE') AS has_view_database_state,
    HAS_PERMS_BY_NAME(DB_NAME(), 'DATABASE', 'VIEW DATABASE PERFORMANCE STATE')
        AS has_view_database_performance_state;
