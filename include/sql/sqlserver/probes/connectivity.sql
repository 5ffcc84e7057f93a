-- Built-in probe builtin.connectivity: the target answers a trivial query (1 = reachable; a failed
--   connection or login is recorded as the probe's error and alerted).
-- reads: nothing (a constant)
-- minimum version: SQL Server 2016 (13.x)
-- permission: CONNECT
/* planmon */
SELECT /* planmon */ 1 AS reachable
