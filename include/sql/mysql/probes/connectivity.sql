-- Built-in probe builtin.connectivity: the target answers a trivial query (1 = reachable; a failed
--   connection or login is recorded as the probe's error and alerted).
-- reads: nothing (a constant)
-- minimum version: MySQL 8.0, MariaDB 10.6
-- permission: none
/* planmon */ SELECT planmon.reachable FROM (SELECT 1 AS reachable) AS planmon
