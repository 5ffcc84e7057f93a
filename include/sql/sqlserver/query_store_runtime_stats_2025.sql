-- query_store_runtime_stats for SQL Server 2025 (17.x) and Azure SQL Database, with each row's
-- replica_group_id (Query Store for readable secondaries). Runtime statistics of the current database
-- for the intervals that overlap the window
-- [@window_start, @window_end), for the top @row_limit plans by total CPU in that window.
--
-- One row per sys.query_store_runtime_stats row: for the interval still open, the flushed row and the
-- in-memory row(s) of one (plan_id, runtime_stats_interval_id, execution_type) come back side by side and
-- the adapter aggregates them (count-weighted means, pooled variances), as the view's documentation says
-- must be done. Intervals overlapping the window (not only those inside it) are read because Query Store
-- intervals (default 60 min) are longer than a collection window (15 min): each run re-reads the open
-- interval and the collector's upsert by (plan, interval start, execution type) keeps the latest reading.
-- Times are microseconds, reads are 8-KB pages, avg_query_max_used_memory is 8-KB pages.
-- planmon's own statements are left out: Query Store drops comments *before* a statement, so every
-- planmon statement repeats the marker inside itself (after SELECT/WITH), and that is what is matched.
--
-- reads: sys.query_store_runtime_stats
--          (https://learn.microsoft.com/sql/relational-databases/system-catalog-views/sys-query-store-runtime-stats-transact-sql),
--        sys.query_store_runtime_stats_interval
--          (https://learn.microsoft.com/sql/relational-databases/system-catalog-views/sys-query-store-runtime-stats-interval-transact-sql),
--        sys.query_store_plan (https://learn.microsoft.com/sql/relational-databases/system-catalog-views/sys-query-store-plan-transact-sql),
--        sys.query_store_query (https://learn.microsoft.com/sql/relational-databases/system-catalog-views/sys-query-store-query-transact-sql),
--        sys.query_store_query_text
--          (https://learn.microsoft.com/sql/relational-databases/system-catalog-views/sys-query-store-query-text-transact-sql)
-- minimum version: SQL Server 2025 (17.x) (replica_group_id); earlier versions use query_store_runtime_stats
-- Rows of different replica groups are never pooled: the adapter keys its aggregation by replica group.
-- permission: VIEW DATABASE STATE in the database
/* planmon */
WITH /* planmon */ top_plans AS (
    SELECT TOP (@row_limit)
        rs.plan_id
    FROM sys.query_store_runtime_stats AS rs
    JOIN sys.query_store_runtime_stats_interval AS rsi
        ON rsi.runtime_stats_interval_id = rs.runtime_stats_interval_id
    JOIN sys.query_store_plan AS p
        ON p.plan_id = rs.plan_id
    JOIN sys.query_store_query AS q
        ON q.query_id = p.query_id
    JOIN sys.query_store_query_text AS qt
        ON qt.query_text_id = q.query_text_id
    WHERE rsi.start_time < @window_end
        AND rsi.end_time > @window_start
        AND qt.query_sql_text NOT LIKE N'%/* planmon */%'
    GROUP BY rs.plan_id
    ORDER BY SUM(rs.count_executions * rs.avg_cpu_time) DESC
)
SELECT
    rs.plan_id,
    rs.runtime_stats_interval_id,
    rs.execution_type,
    rs.replica_group_id,
    rsi.start_time,
    rsi.end_time,
    rs.count_executions,
    rs.avg_cpu_time,
    rs.stdev_cpu_time,
    rs.min_cpu_time,
    rs.max_cpu_time,
    rs.avg_duration,
    rs.stdev_duration,
    rs.min_duration,
    rs.max_duration,
    rs.avg_logical_io_reads,
    rs.avg_physical_io_reads,
    rs.avg_rowcount,
    rs.avg_query_max_used_memory,
    p.query_id,
    q.query_hash,
    qt.query_sql_text
FROM top_plans AS tp
JOIN sys.query_store_runtime_stats AS rs
    ON rs.plan_id = tp.plan_id
JOIN sys.query_store_runtime_stats_interval AS rsi
    ON rsi.runtime_stats_interval_id = rs.runtime_stats_interval_id
JOIN sys.query_store_plan AS p
    ON p.plan_id = rs.plan_id
JOIN sys.query_store_query AS q
    ON q.query_id = p.query_id
JOIN sys.query_store_query_text AS qt
    ON qt.query_text_id = q.query_text_id
WHERE rsi.start_time < @window_end
    AND rsi.end_time > @window_start
ORDER BY rs.plan_id, rs.runtime_stats_interval_id, rs.execution_type, rs.replica_group_id;
