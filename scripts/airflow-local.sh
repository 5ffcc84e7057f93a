#!/usr/bin/env bash
# Run Airflow 3 locally with planmon's DAGs and plugin, every listener on 127.0.0.1.
#
# `airflow standalone` would be simpler, but its scheduler and triggerer log servers bind all
# addresses and cannot be told otherwise, so the components run here one by one: the scheduler and
# triggerer with --skip-serve-logs, the API server on 127.0.0.1. Ctrl-C stops them all, and the
# metadata DB's PostgreSQL (its files stay in $AIRFLOW_HOME/postgres).
set -euo pipefail

project_root="$(cd "$(dirname "$0")/.." && pwd)"
airflow="$project_root/.venv/bin/airflow"
port="${AIRFLOW_PORT:-8080}"

export AIRFLOW_HOME="${AIRFLOW_HOME:-$project_root/.airflow}"
export AIRFLOW__CORE__DAGS_FOLDER="$project_root/dags"
export AIRFLOW__CORE__PLUGINS_FOLDER="$project_root/plugins"
export AIRFLOW__CORE__LOAD_EXAMPLES=False
export AIRFLOW__CORE__EXECUTOR=LocalExecutor
export AIRFLOW__CORE__PARALLELISM="${AIRFLOW__CORE__PARALLELISM:-4}"
export AIRFLOW__CORE__AUTH_MANAGER=airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager
export AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS="${AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS:-admin:admin}"
export AIRFLOW__API__HOST=127.0.0.1
export AIRFLOW__API__PORT="$port"
export AIRFLOW__API__BASE_URL="http://127.0.0.1:$port"
export AIRFLOW__CORE__EXECUTION_API_SERVER_URL="http://127.0.0.1:$port/execution/"
export PLANMON_HOME="${PLANMON_HOME:-$project_root/.planmon}"
mkdir -p "$AIRFLOW_HOME" "$PLANMON_HOME"

# Airflow's metadata in a PostgreSQL kept under $AIRFLOW_HOME/postgres (127.0.0.1), not SQLite: four
# components writing at once lock SQLite ("database is locked" from backfills). Stopped on exit.
AIRFLOW__DATABASE__SQL_ALCHEMY_CONN="$("$project_root/.venv/bin/python" -m planmon.airflow.metadata up \
  --airflow-home "$AIRFLOW_HOME")"
export AIRFLOW__DATABASE__SQL_ALCHEMY_CONN
metadata_down() {
  "$project_root/.venv/bin/python" -m planmon.airflow.metadata down --airflow-home "$AIRFLOW_HOME" || true
}
trap metadata_down EXIT
# for airflow commands against this Airflow (`. $AIRFLOW_HOME/env.sh`; no secret in it: loopback trust)
cat >"$AIRFLOW_HOME/env.sh" <<ENV
export AIRFLOW_HOME="$AIRFLOW_HOME"
export AIRFLOW__DATABASE__SQL_ALCHEMY_CONN="$AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"
export AIRFLOW__CORE__DAGS_FOLDER="$AIRFLOW__CORE__DAGS_FOLDER"
export AIRFLOW__CORE__PLUGINS_FOLDER="$AIRFLOW__CORE__PLUGINS_FOLDER"
export PLANMON_HOME="$PLANMON_HOME"
ENV

"$airflow" db migrate >"$AIRFLOW_HOME/db-migrate.log" 2>&1 || {
  echo "airflow db migrate failed; see $AIRFLOW_HOME/db-migrate.log" >&2
  exit 1
}
# the pool planmon_collect's and planmon_probes' target tasks run in (PLANMON_TARGETS_POOL[_SLOTS]):
# without it they stay "scheduled" forever
"$project_root/.venv/bin/python" -m planmon.airflow.pools >"$AIRFLOW_HOME/pools.log" 2>&1 || {
  echo "creating planmon's Airflow pool failed; see $AIRFLOW_HOME/pools.log" >&2
  exit 1
}
# the target `make demo` left (its PostgreSQL started again if it is down, its connections repointed)
"$project_root/.venv/bin/python" -m planmon.demo.target up --home "$PLANMON_HOME"

pids=()
stop_all() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  # a component that ignores SIGTERM (a busy scheduler loop) gets 30 s, then SIGKILL: Ctrl-C always ends
  for _ in $(seq 30); do
    alive=0
    for pid in "${pids[@]}"; do kill -0 "$pid" 2>/dev/null && alive=1; done
    [ "$alive" = 0 ] && break
    sleep 1
  done
  for pid in "${pids[@]}"; do kill -9 "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  metadata_down
}
trap stop_all EXIT INT TERM

"$airflow" scheduler --skip-serve-logs >"$AIRFLOW_HOME/scheduler.log" 2>&1 & pids+=($!)
"$airflow" dag-processor >"$AIRFLOW_HOME/dag-processor.log" 2>&1 & pids+=($!)
"$airflow" triggerer --skip-serve-logs >"$AIRFLOW_HOME/triggerer.log" 2>&1 & pids+=($!)

echo "Airflow UI:      http://127.0.0.1:$port/  (user: admin)"
echo "admin password:  $AIRFLOW_HOME/simple_auth_manager_passwords.json.generated (written at first start)"
echo "component logs:  $AIRFLOW_HOME/{scheduler,dag-processor,triggerer}.log"
"$airflow" api-server --host 127.0.0.1 --port "$port" &
pids+=($!)
wait -n "${pids[@]}"
