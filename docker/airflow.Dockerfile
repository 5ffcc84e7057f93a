# Airflow 3.3 with planmon and its locked dependencies (uv.lock), for docker-compose.yml.
FROM apache/airflow:3.3.2-python3.11
# a C compiler for planmon's compiled showplan reader (hatch_build.py; without one planmon falls back
# to its pure-Python reader)
USER root
RUN apt-get update \
 && apt-get install -y --no-install-recommends gcc libc6-dev \
 && rm -rf /var/lib/apt/lists/*
USER airflow
COPY --chown=airflow:root pyproject.toml uv.lock README.md hatch_build.py /opt/planmon/
COPY --chown=airflow:root plugins /opt/planmon/plugins
COPY --chown=airflow:root include /opt/planmon/include
RUN pip install --no-cache-dir "uv==0.13.9" \
 && cd /opt/planmon \
 && uv export --frozen --no-dev --no-emit-project --no-hashes -o /tmp/requirements.txt \
 && pip install --no-cache-dir -r /tmp/requirements.txt \
 && pip install --no-cache-dir --no-deps -e /opt/planmon
