-- Query Store state of the current database: is it on, read-only and why, how full.
-- reads: sys.database_query_store_options
--        (https://learn.microsoft.com/sql/relational-databases/system-catalog-views/sys-database-query-store-options-transact-sql)
-- minimum version: SQL Server 2016 (13.x)
-- permission: VIEW DATABASE STATE in the database
/* planmon */
SELECT /* planmon */
    o.desired_state_desc,
    o.actual_state_desc,
    o.readonly_reason,
    o.current_storage_size_mb,
    o.max_storage_size_mb,
    o.interval_length_minutes,
    o.query_capture_mode_desc
FROM sys.database_query_store_options AS o;
