-- Built-in probe builtin.connectivity: the target answers a trivial query (1 = reachable; a failed
--   connection or login is recorded as the probe's error and alerted).
-- reads: nothing (a constant)
-- minimum version: 13
-- permission: CONNECT on the connection's database
/* planmon */ SELECT 1 AS reachable
