#!/bin/bash
# MariaDB demo target: a monitoring user that may read performance_schema (and run EXPLAIN on the
# shop) and a remediation user that may ANALYZE TABLE and recreate indexes in the shop database.
# Passwords come from the environment, never from this file.
set -euo pipefail
mariadb --user=root --password="$MARIADB_ROOT_PASSWORD" <<SQL
CREATE USER IF NOT EXISTS 'planmon_monitor'@'%' IDENTIFIED BY '${PLANMON_MONITOR_PASSWORD}';
GRANT SELECT ON performance_schema.* TO 'planmon_monitor'@'%';
GRANT SELECT, PROCESS ON *.* TO 'planmon_monitor'@'%';
CREATE USER IF NOT EXISTS 'planmon_remediation'@'%' IDENTIFIED BY '${PLANMON_REMEDIATION_PASSWORD}';
GRANT SELECT, INSERT, ALTER, INDEX ON shop.* TO 'planmon_remediation'@'%';
SQL
