-- Definitions of the indexes on the given tables (parallel arrays: schema, table; a NULL schema
-- matches the table in any schema), as CREATE INDEX statements the server can run again.
-- reads: pg_indexes, pg_namespace, pg_class, pg_index (https://www.postgresql.org/docs/current/view-pg-indexes.html)
-- minimum version: 13
-- permission: none (catalogs are readable by every role)
/* planmon */
SELECT /* planmon */
    ix.schemaname AS schema_name,
    ix.tablename AS table_name,
    ix.indexname AS index_name,
    ix.indexdef AS definition,
    x.indisunique AS is_unique,
    x.indisprimary AS is_primary
FROM pg_indexes AS ix
JOIN unnest(%(schemas)s::text[], %(tables)s::text[]) AS wanted (schema_name, table_name)
    ON ix.tablename = wanted.table_name
    AND (wanted.schema_name IS NULL OR ix.schemaname = wanted.schema_name)
JOIN pg_namespace AS n ON n.nspname = ix.schemaname
JOIN pg_class AS c ON c.relnamespace = n.oid AND c.relname = ix.indexname
JOIN pg_index AS x ON x.indexrelid = c.oid
ORDER BY ix.schemaname, ix.tablename, ix.indexname
