-- Forcing state of every Query Store plan of the requested queries (the query acted on, and on SQL Server
-- 2022+ the other variants of its parent query), read right before remediation proposes or verifies a
-- force (never trusted from the last collection: a person or automatic plan correction may have acted
-- since). A failing force shows as force_failure_count rising and last_force_failure_reason_desc.
-- reads: sys.query_store_plan (https://learn.microsoft.com/sql/relational-databases/system-catalog-views/sys-query-store-plan-transact-sql)
-- minimum version: SQL Server 2017 (14.x) (plan_forcing_type_desc; SQL Server 2016 uses remediation_query_plans_2016)
-- permission: VIEW DATABASE STATE in the database
/* planmon */
SELECT /* planmon */
    p.plan_id,
    p.query_id,
    p.is_forced_plan,
    p.plan_forcing_type_desc,
    p.force_failure_count,
    p.last_force_failure_reason_desc
FROM sys.query_store_plan AS p
WHERE p.query_id IN (@query_ids)
ORDER BY p.query_id, p.plan_id;
