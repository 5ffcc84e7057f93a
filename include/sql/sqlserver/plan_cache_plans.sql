-- Fallback plan capture: the showplan text of the most recently used cached plan of each requested
-- query_plan_hash. sys.dm_exec_text_query_plan returns nvarchar(max), so plans deeper than 128 levels
-- (which sys.dm_exec_query_plan cannot return as xml) are read too; nothing here converts to xml.
-- reads: sys.dm_exec_query_stats
--          (https://learn.microsoft.com/sql/relational-databases/system-dynamic-management-views/sys-dm-exec-query-stats-transact-sql),
--        sys.dm_exec_text_query_plan
--          (https://learn.microsoft.com/sql/relational-databases/system-dynamic-management-views/sys-dm-exec-text-query-plan-transact-sql)
-- minimum version: SQL Server 2016 (13.x)
-- permission: VIEW SERVER STATE
/* planmon */
WITH /* planmon */ latest AS (
    SELECT
        qs.query_hash,
        qs.query_plan_hash,
        qs.plan_handle,
        qs.statement_start_offset,
        qs.statement_end_offset,
        ROW_NUMBER() OVER (PARTITION BY qs.query_plan_hash ORDER BY qs.last_execution_time DESC) AS recency
    FROM sys.dm_exec_query_stats AS qs
    WHERE qs.query_plan_hash IN (@query_plan_hashes)
)
SELECT
    l.query_hash,
    l.query_plan_hash,
    tqp.dbid,
    tqp.encrypted,
    tqp.query_plan
FROM latest AS l
CROSS APPLY sys.dm_exec_text_query_plan(l.plan_handle, l.statement_start_offset, l.statement_end_offset) AS tqp
WHERE l.recency = 1;
