-- Automatic plan correction's recommendations for the current database (state and details are JSON documents).
-- They are not persisted: a restart loses them, so remediation reads them when it needs them.
-- reads: sys.dm_db_tuning_recommendations
--        (https://learn.microsoft.com/sql/relational-databases/system-dynamic-management-views/sys-dm-db-tuning-recommendations-transact-sql)
-- minimum version: SQL Server 2017 (14.x)
-- permission: VIEW SERVER STATE (SQL Server); VIEW DATABASE STATE (Azure SQL Database)
/* planmon */
SELECT /* planmon */
    r.name,
    r.type,
    r.reason,
    r.valid_since,
    r.last_refresh,
    r.state,
    r.is_executable_action,
    r.is_revertable_action,
    r.execute_action_initiated_by,
    r.execute_action_initiated_time,
    r.revert_action_initiated_by,
    r.revert_action_initiated_time,
    r.score,
    r.details
FROM sys.dm_db_tuning_recommendations AS r
ORDER BY r.score DESC, r.name;
