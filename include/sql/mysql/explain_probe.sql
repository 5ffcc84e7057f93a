-- What: a statement planmon EXPLAINs (FORMAT=JSON, never ANALYZE) to check that plan capture works on
--   this server; it touches no table.
-- reads: nothing (a constant)
-- minimum version: MySQL 8.0, MariaDB 10.6
-- permission: none
/* planmon */ SELECT planmon.probe FROM (SELECT 1 AS probe) AS planmon
