from __future__ import annotations

import pytest

from planmon.errors import EngineError, EngineErrorReason, PlanParseError, scrub_secrets


@pytest.mark.parametrize(
    "raw",
    [
        "login failed: password=hunter2secret; server=db1",
        "connect(PWD='hunter2secret')",
        "could not connect to mssql://monitor:hunter2secret@db1:1433/master",
        'token: "hunter2secret"',
    ],
)
def test_secrets_are_scrubbed_from_driver_messages(raw: str) -> None:
    assert "hunter2secret" not in scrub_secrets(raw)


def test_scrub_keeps_the_rest_of_the_message() -> None:
    assert scrub_secrets("timeout after 30s on db1") == "timeout after 30s on db1"


def test_engine_error_names_target_and_never_shows_the_password() -> None:
    error = EngineError(
        "FATAL: password authentication failed, password=hunter2secret",
        reason=EngineErrorReason.AUTHENTICATION,
        target="orders-prod",
        hint="check the Airflow connection's login",
    )
    assert "orders-prod" in str(error) and "hunter2secret" not in str(error)
    assert error.reason is EngineErrorReason.AUTHENTICATION


def test_plan_parse_error_says_where() -> None:
    error = PlanParseError("unexpected end", source="a.sqlplan", position="line 3, column 9")
    assert str(error).startswith("a.sqlplan, line 3, column 9: unexpected end")
