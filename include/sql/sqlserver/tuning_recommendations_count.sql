-- Whether automatic tuning recommendations can be read in the current database, and how many there are.
-- reads: sys.dm_db_tuning_recommendations
--        (https://learn.microsoft.com/sql/relational-databases/system-dynamic-management-views/sys-dm-db-tuning-recommendations-transact-sql)
-- minimum version: SQL Server 2017 (14.x)
-- permission: VIEW SERVER STATE (SQL Server); VIEW DATABASE STATE (Azure SQL Database)
/* planmon */
SELECT /* planmon */
    COUNT(*) AS recommendation_count
FROM sys.dm_db_tuning_recommendations AS r;
