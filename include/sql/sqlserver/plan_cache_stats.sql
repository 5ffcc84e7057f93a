-- Fallback when Query Store is off everywhere: cumulative counters of the cached plans, server-wide, top
-- @row_limit statements by total CPU. Counters grow from each plan's compilation until it leaves the cache;
-- the collector turns two readings into a delta. Times are microseconds (accurate to milliseconds).
-- The batch text is read through the plan handle: for ad hoc statements only the plan handle carries the
-- database id (sys.dm_exec_sql_text documentation). @all_databases = 1 reads every database; otherwise
-- only statements compiled in @databases.
-- reads: sys.dm_exec_query_stats
--          (https://learn.microsoft.com/sql/relational-databases/system-dynamic-management-views/sys-dm-exec-query-stats-transact-sql),
--        sys.dm_exec_sql_text
--          (https://learn.microsoft.com/sql/relational-databases/system-dynamic-management-views/sys-dm-exec-sql-text-transact-sql)
-- minimum version: SQL Server 2016 (13.x)
-- permission: VIEW SERVER STATE
/* planmon */
SELECT /* planmon */ TOP (@row_limit)
    qs.query_hash,
    qs.query_plan_hash,
    qs.execution_count,
    qs.total_worker_time,
    qs.min_worker_time,
    qs.max_worker_time,
    qs.total_elapsed_time,
    qs.min_elapsed_time,
    qs.max_elapsed_time,
    qs.total_logical_reads,
    qs.total_physical_reads,
    qs.total_rows,
    DB_NAME(st.dbid) AS database_name,
    SUBSTRING(
        st.text,
        qs.statement_start_offset / 2 + 1,
        (CASE WHEN qs.statement_end_offset = -1 THEN DATALENGTH(st.text) ELSE qs.statement_end_offset END
            - qs.statement_start_offset) / 2 + 1
    ) AS statement_text
FROM sys.dm_exec_query_stats AS qs
CROSS APPLY sys.dm_exec_sql_text(qs.plan_handle) AS st
WHERE (st.text IS NULL OR st.text NOT LIKE N'%/* planmon */%')  -- NULL: encrypted modules, still counted
    AND (@all_databases = 1 OR DB_NAME(st.dbid) IN (@databases))
ORDER BY qs.total_worker_time DESC;
