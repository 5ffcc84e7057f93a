#!/bin/bash
# PostgreSQL demo target: pg_stat_statements in the shop database, a monitoring role with least
# privilege (pg_read_all_stats) and a remediation role that may ANALYZE and create indexes on the
# shop's tables (member of their owner). Passwords come from the environment, never from this file.
set -euo pipefail
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname shop \
  -v monitor_password="$PLANMON_MONITOR_PASSWORD" -v remediation_password="$PLANMON_REMEDIATION_PASSWORD" <<'SQL'
CREATE EXTENSION IF NOT EXISTS pg_stat_statements;
CREATE ROLE planmon_monitor LOGIN PASSWORD :'monitor_password' IN ROLE pg_read_all_stats;
CREATE ROLE planmon_remediation LOGIN PASSWORD :'remediation_password' IN ROLE shop_owner;
SQL
