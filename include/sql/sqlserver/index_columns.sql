-- Key and included columns of the rowstore indexes (clustered, nonclustered) on the requested tables of the
-- current database, in key order, so the adapter can render each index as CREATE INDEX DDL.
-- @tables holds '[schema].[table]' names, each part quoted as QUOTENAME quotes it (so a dot inside a name
-- cannot be mistaken for the separator). Heaps, XML, spatial, columnstore, hypothetical and disabled indexes are
-- left out.
-- reads: sys.indexes (https://learn.microsoft.com/sql/relational-databases/system-catalog-views/sys-indexes-transact-sql),
--        sys.index_columns (https://learn.microsoft.com/sql/relational-databases/system-catalog-views/sys-index-columns-transact-sql),
--        sys.columns (https://learn.microsoft.com/sql/relational-databases/system-catalog-views/sys-columns-transact-sql),
--        sys.tables (https://learn.microsoft.com/sql/relational-databases/system-catalog-views/sys-tables-transact-sql),
--        sys.schemas (https://learn.microsoft.com/sql/relational-databases/system-catalog-views/schemas-catalog-views-sys-schemas)
-- minimum version: SQL Server 2016 (13.x)
-- permission: metadata visibility on the tables (VIEW DEFINITION or any permission on them); filter_definition
--             is NULL without it
/* planmon */
SELECT /* planmon */
    s.name AS schema_name,
    t.name AS table_name,
    i.index_id,
    i.name AS index_name,
    i.type_desc,
    i.is_unique,
    i.is_primary_key,
    i.has_filter,
    i.filter_definition,
    ic.key_ordinal,
    ic.index_column_id,
    ic.is_descending_key,
    ic.is_included_column,
    c.name AS column_name
FROM sys.indexes AS i
JOIN sys.tables AS t
    ON t.object_id = i.object_id
JOIN sys.schemas AS s
    ON s.schema_id = t.schema_id
JOIN sys.index_columns AS ic
    ON ic.object_id = i.object_id AND ic.index_id = i.index_id
JOIN sys.columns AS c
    ON c.object_id = ic.object_id AND c.column_id = ic.column_id
WHERE i.type IN (1, 2)
    AND i.is_hypothetical = 0
    AND i.is_disabled = 0
    AND (QUOTENAME(s.name) + N'.' + QUOTENAME(t.name)) IN (@tables)
ORDER BY s.name, t.name, i.index_id, ic.is_included_column, ic.key_ordinal, ic.index_column_id;
