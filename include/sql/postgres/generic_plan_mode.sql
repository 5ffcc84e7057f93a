-- SET LOCAL plan_cache_mode = force_generic_plan, as a query: used before EXPLAIN EXECUTE of a statement
-- prepared by planmon (PostgreSQL 13-15 have no EXPLAIN (GENERIC_PLAN)), so that the plan shown is the
-- generic one, independent of the NULLs passed for $1..$n. Local to planmon's transaction, which is
-- rolled back.
-- reads: nothing; sets a transaction-local setting (https://www.postgresql.org/docs/current/runtime-config-query.html#GUC-PLAN-CACHE-MODE)
-- minimum version: 12 (plan_cache_mode)
-- permission: none
/* planmon */
SELECT /* planmon */ set_config('plan_cache_mode', 'force_generic_plan', true) AS plan_cache_mode
