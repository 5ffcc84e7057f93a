-- Plans and their forcing state for the requested plan_ids of the current database.
-- query_plan is nvarchar(max) and is returned as text on purpose: converting it to xml fails with error 6335
-- for plans nested deeper than 128 levels, so planmon never casts it; the plan parser reads the text.
-- reads: sys.query_store_plan (https://learn.microsoft.com/sql/relational-databases/system-catalog-views/sys-query-store-plan-transact-sql)
-- minimum version: SQL Server 2017 (14.x) (plan_forcing_type_desc; SQL Server 2016 uses query_store_plans_2016)
-- permission: VIEW DATABASE STATE in the database
/* planmon */
SELECT /* planmon */
    p.plan_id,
    p.query_id,
    p.query_plan_hash,
    p.engine_version,
    p.is_forced_plan,
    p.plan_forcing_type_desc,
    p.force_failure_count,
    p.last_force_failure_reason_desc,
    p.query_plan
FROM sys.query_store_plan AS p
WHERE p.plan_id IN (@plan_ids);
