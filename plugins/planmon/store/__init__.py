"""planmon's repository: schema, migrations, idempotent writes and typed reads (SQLite, PostgreSQL,
SQL Server). Only this package talks to the repository."""

from __future__ import annotations

from planmon.store.repository import Repository, RepositoryConflict, RepositoryError

__all__ = ["Repository", "RepositoryConflict", "RepositoryError"]
