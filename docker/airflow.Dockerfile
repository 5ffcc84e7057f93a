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
# planmon's own locked environment (uv.lock, with the celery extra for the compose `celery` profile),
# not the base image's packages: the workers run exactly the versions the tests ran.
ENV UV_PROJECT_ENVIRONMENT=/opt/planmon-venv \
    UV_PYTHON_DOWNLOADS=never \
    PATH=/opt/planmon-venv/bin:$PATH
USER root
RUN mkdir -p /opt/planmon-venv && chown airflow:root /opt/planmon-venv
USER airflow
RUN pip install --no-cache-dir "uv==0.13.9" \
 && cd /opt/planmon \
 && python -m uv sync --frozen --no-dev --extra celery --no-editable --compile-bytecode --python "$(command -v python3.11)"
