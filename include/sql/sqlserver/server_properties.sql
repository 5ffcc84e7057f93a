-- Version, edition and server-level permissions of the login planmon connects as; read once per run.
-- reads: SERVERPROPERTY (https://learn.microsoft.com/sql/t-sql/functions/serverproperty-transact-sql),
--        HAS_PERMS_BY_NAME (https://learn.microsoft.com/sql/t-sql/functions/has-perms-by-name-transact-sql)
-- minimum version: SQL Server 2016 (13.x)
-- permission: none (any login); it reports whether VIEW SERVER STATE is held. VIEW SERVER PERFORMANCE STATE
--             exists from SQL Server 2022; on older versions HAS_PERMS_BY_NAME returns NULL for it.
/* planmon */
SELECT /* planmon */
    CAST(SERVERPROPERTY('ProductVersion') AS nvarchar(128)) AS product_version,
    CAST(SERVERPROPERTY('ProductLevel') AS nvarchar(128)) AS product_level,
    CAST(SERVERPROPERTY('Edition') AS nvarchar(128)) AS edition,
    CAST(SERVERPROPERTY('EngineEdition') AS int) AS engine_edition,
    HAS_PERMS_BY_NAME(NULL, NULL, 'VIEW SERVER STATE') AS has_view_server_state,
    HAS_PERMS_BY_NAME(NULL, NULL, 'VIEW SERVER PERFORMANCE STATE') AS has_view_server_performance_state;
