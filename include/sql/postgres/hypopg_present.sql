-- Whether the hypopg extension is installed in this database: remediation predictions EXPLAIN the
-- regressed statement with a proposed index as a hypothetical one. planmon never creates it.
-- reads: pg_extension, pg_namespace (https://hypopg.readthedocs.io/)
-- minimum version: 13
-- permission: none
/* planmon */
SELECT /* planmon */
    e.extversion AS hypopg_version,
    n.nspname AS hypopg_schema
FROM pg_extension AS e
JOIN pg_namespace AS n ON n.oid = e.extnamespace
WHERE e.extname = 'hypopg'
