-- Parameter-sensitive plan optimisation (compatibility level 160+): which of the requested queries are
-- variants, of which parent query, under which dispatcher plan. Each variant has its own query_id (and
-- object_id 0), its own plans and runtime statistics; the dispatcher plan belongs to the parent query and
-- records no runtime statistics. planmon keeps the relation beside each variant's query.
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
WHERE v.query_variant_query_id IN (@query_ids)
ORDER BY v.query_variant_query_id;
