-- Query Store for readable secondaries: the replica groups Query Store has seen and their role, so the
-- collector reads the runtime statistics of one replica group (the primary's) and never pools rows of
-- different groups. A replica has a row per role it was observed in (after a failover: one per role).
-- reads: sys.query_store_replicas
--          (https://learn.microsoft.com/sql/relational-databases/system-catalog-views/sys-query-store-replicas)
-- minimum version: SQL Server 2025 (17.x), Azure SQL Database
-- permission: VIEW DATABASE STATE in the database (VIEW DATABASE PERFORMANCE STATE on SQL Server 2022+)
/* planmon */
SELECT /* planmon */
    r.replica_group_id,
    r.role_type,
    r.replica_name
FROM sys.query_store_replicas AS r
ORDER BY r.replica_group_id, r.role_type;
