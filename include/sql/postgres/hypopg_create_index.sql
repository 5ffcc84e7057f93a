-- A hypothetical index (hypopg) from a CREATE INDEX definition: it lives in this backend's memory
-- only, is visible to EXPLAIN (never to executions), and is dropped by hypopg_reset() and the
-- rolled-back transaction it is created in. Nothing is written to the catalog.
-- reads: hypopg_create_index() (https://hypopg.readthedocs.io/en/latest/usage.html)
-- minimum version: 13, hypopg 1.1
-- permission: EXECUTE on hypopg's functions (granted to PUBLIC when the extension is created)
/* planmon */
SELECT /* planmon */
    h.indexrelid::bigint AS indexrelid,
    h.indexname AS indexname
FROM hypopg_create_index(%(definition)s) AS h
