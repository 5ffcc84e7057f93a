"""The throwaway database servers live in the package (``planmon.embedded``) so the demo can use
them too; tests, benchmarks and fixtures keep importing them from here."""

from planmon.embedded import (
    MARIADB_MONITORING_OPTIONS,
    MariaDBServer,
    PostgresServer,
    ServerUnavailable,
    free_port,
    mariadb_binaries,
    mariadb_server,
    postgres_bindir,
    postgres_server,
)

__all__ = [
    "MARIADB_MONITORING_OPTIONS",
    "MariaDBServer",
    "PostgresServer",
    "ServerUnavailable",
    "free_port",
    "mariadb_binaries",
    "mariadb_server",
    "postgres_bindir",
    "postgres_server",
]
