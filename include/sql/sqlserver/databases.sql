-- The online user databases of the server, for targets that list no databases (discovery).
-- System databases (master, tempdb, model, msdb: database_id 1-4) and the distribution database are left out.
-- reads: sys.databases (https://learn.microsoft.com/sql/relational-databases/system-catalog-views/sys-databases-transact-sql)
-- minimum version: SQL Server 2016 (13.x) (is_query_store_on)
-- permission: none beyond connecting (metadata visibility: a login sees master, tempdb and the databases it can use)
/* planmon */
SELECT /* planmon */
    d.name,
    d.database_id,
    d.state_desc,
    d.is_query_store_on,
    d.is_read_only,
    HAS_DBACCESS(d.name) AS has_db_access
FROM sys.databases AS d
WHERE d.database_id > 4
    AND d.state_desc = N'ONLINE'
    AND d.is_distributor = 0
ORDER BY d.name;
