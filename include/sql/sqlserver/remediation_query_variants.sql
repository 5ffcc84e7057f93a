-- Parameter-sensitive plan optimisation: how the query acted on relates to its parent and sibling variants.
-- Rows where the query is a variant (its parent, its dispatcher plan) and every variant of the same parent
-- (or of the query itself, when it is the parent), so remediation can refuse to force a dispatcher plan and
-- can see a sibling variant forced by someone else (forcing a dispatcher switches off the variants forced
-- under other dispatchers).
-- reads: sys.query_store_query_variant
--          (https://learn.microsoft.com/sql/relational-databases/system-catalog-views/sys-query-store-query-variant)
-- minimum version: SQL Server 2022 (16.x)
-- permission: VIEW DATABASE STATE in the database (VIEW DATABASE PERFORMANCE STATE on SQL Server 2022+)
/* planmon */
SELECT /* planmon */
    v.query_variant_query_id,
    v.parent_query_id,
    v.dispatcher_plan_id
FROM sys.query_store_query_variant AS v
WHERE v.parent_query_id = @query_id
    OR v.parent_query_id IN (
        SELECT w.parent_query_id
        FROM sys.query_store_query_variant AS w
        WHERE w.query_variant_query_id = @query_id
    )
ORDER BY v.parent_query_id, v.query_variant_query_id;
