-- query_store_plans for SQL Server 2016, whose sys.query_store_plan has no plan_forcing_type_desc
-- (automatic tuning, and so AUTO forcing, exists from SQL Server 2017: every forced plan there is MANUAL).
-- query_plan is read as text, never converted to xml (error 6335 beyond 128 nesting levels).
-- reads: sys.query_store_plan (https://learn.microsoft.com/sql/relational-databases/system-catalog-views/sys-query-store-plan-transact-sql)
-- minimum version: SQL Server 2016 (13.x)
-- permission: VIEW DATABASE STATE in the database
/* planmon */
SELECT /* planmon */
    p.plan_id,
    p.query_id,
    p.query_plan_hash,
    p.engine_version,
    p.is_forced_plan,
    p.force_failure_count,
    p.last_force_failure_reason_desc,
    p.query_plan
FROM sys.query_store_plan AS p
WHERE p.plan_id IN (@plan_ids);
