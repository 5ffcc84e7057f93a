-- Built-in probe builtin.query_store_state: Query Store of the connection's database as one number.
--   3 = OFF (nothing is captured), 2 = READ_ONLY (capture stopped, e.g. storage full: readonly_reason),
--   1 = READ_WRITE but at or above 90% of max_storage_size_mb (it turns read-only when full),
--   0 = READ_WRITE with room, -1 = not applicable: the connection's database is a system database
--   (master, tempdb, model, msdb have no user Query Store; point the probe's database: elsewhere).
--   No row (Query Store never configured) counts as OFF.
-- reads: sys.database_query_store_options
--        (https://learn.microsoft.com/sql/relational-databases/system-catalog-views/sys-database-query-store-options-transact-sql)
-- minimum version: SQL Server 2016 (13.x)
-- permission: VIEW DATABASE STATE in the database
/* planmon */
SELECT /* planmon */
    CASE WHEN DB_ID() <= 4 THEN -1 ELSE COALESCE(
        (SELECT CASE
                    WHEN o.actual_state_desc = 'OFF' THEN 3
                    WHEN o.actual_state_desc IN ('READ_ONLY', 'ERROR') THEN 2
                    WHEN o.max_storage_size_mb > 0
                         AND o.current_storage_size_mb >= 0.9 * o.max_storage_size_mb THEN 1
                    ELSE 0
                END
         FROM sys.database_query_store_options AS o),
        3
    ) END AS query_store_state
