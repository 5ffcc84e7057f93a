#!/bin/bash
# One-shot init of the stack: Airflow's metadata DB, planmon's repository schema, the targets pool,
# and the three demo targets (each added only when missing, so re-running the stack is safe).
set -euo pipefail
airflow db migrate
planmon init
python -m planmon.airflow.pools  # PLANMON_TARGETS_POOL with PLANMON_TARGETS_POOL_SLOTS slots
add_target() {  # NAME ENGINE CONN_ID ENV
  if planmon targets list --json | grep -q "\"name\": \"$1\""; then
    echo "target $1 already registered"
  else
    planmon targets add "$1" --engine "$2" --conn-id "$3" --env "$4" \
      --remediation-mode propose --remediation-conn-id "$3_remediation"
  fi
}
add_target demo-mssql sqlserver planmon_demo_mssql demo
add_target demo-postgres postgres planmon_demo_pg demo
add_target demo-mariadb mysql planmon_demo_mariadb demo
