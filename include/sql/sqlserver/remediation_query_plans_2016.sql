-- remediation_query_plans for SQL Server 2016, whose sys.query_store_plan has no plan_forcing_type_desc
-- (error 207 there): automatic tuning, and so AUTO forcing, exists from SQL Server 2017, so every forced
-- plan on 2016 is a user's (MANUAL).
-- reads: sys.query_store_plan (https://learn.microsoft.com/sql/relational-databases/system-catalog-views/sys-query-store-plan-transact-sql)
-- minimum version: SQL Server 2016 (13.x)
-- permission: VIEW DATABASE STATE in the database
/* planmon */
SELECT /* planmon */
    p.plan_id,
    p.query_id,
    p.is_forced_plan,
    p.force_failure_count,
    p.last_force_failure_reason_desc
FROM sys.query_store_plan AS p
WHERE p.query_id IN (@query_ids)
ORDER BY p.query_id, p.plan_id;
