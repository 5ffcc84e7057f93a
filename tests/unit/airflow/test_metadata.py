"""make airflow's metadata DB: a PostgreSQL kept in the Airflow home, its files kept between runs."""

from __future__ import annotations

from pathlib import Path

import psycopg
import pytest

from planmon.airflow.metadata import metadata_down, metadata_up, postgres_dir
from planmon.embedded import running_postgres


@pytest.mark.postgres
def test_the_metadata_db_comes_back_with_its_data_on_the_same_url(tmp_path: Path) -> None:
    airflow_home = tmp_path / ".airflow"
    try:
        url = metadata_up(airflow_home)
        assert url.startswith("postgresql+psycopg://postgres@127.0.0.1:") and url.endswith("/airflow")
        dsn = url.replace("postgresql+psycopg://", "postgresql://")
        with psycopg.connect(dsn, autocommit=True) as metadata:
            metadata.execute("CREATE TABLE kept (id int)")
        assert metadata_up(airflow_home) == url  # running: the same server
        metadata_down(airflow_home)
        assert running_postgres(postgres_dir(airflow_home)) is None
        assert metadata_up(airflow_home) == url  # started again, same port, same files
        with psycopg.connect(dsn) as metadata:
            assert metadata.execute("SELECT count(*) FROM kept").fetchone() == (0,)
        data = running_postgres(postgres_dir(airflow_home))
        assert data is not None
    finally:
        metadata_down(airflow_home, delete=True)  # make clean: its files too, wherever they went
    assert running_postgres(postgres_dir(airflow_home)) is None
    assert not data.datadir.exists() and not postgres_dir(airflow_home).exists()
