-- The Query Store hints set on one query, read before planmon sets or clears a hint: sp_query_store_set_hints
-- replaces the whole hint string and sp_query_store_clear_hints removes all of it, so the string read here is
-- what a rollback restores. source 0 is a user's hint; a non-zero source was written by the engine's own
-- feedback features and planmon leaves such a query alone. Failures to apply a hint show here too.
-- reads: sys.query_store_query_hints
--          (https://learn.microsoft.com/sql/relational-databases/system-catalog-views/sys-query-store-query-hints-transact-sql)
-- minimum version: SQL Server 2022 (16.x)
-- permission: VIEW SERVER PERFORMANCE STATE (SQL Server 2022+)
/* planmon */
SELECT /* planmon */
    h.query_hint_id,
    h.query_id,
    h.replica_group_id,
    h.query_hint_text,
    h.last_query_hint_failure_reason_desc,
    h.query_hint_failure_count,
    h.source,
    h.source_desc
FROM sys.query_store_query_hints AS h
WHERE h.query_id = @query_id
ORDER BY h.replica_group_id, h.query_hint_id;
