"""Routing rules: matching, defaults, and validation errors that name the file and the field."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest

from planmon.alerting.channels import (
    BrokenChannel,
    LogFileChannel,
    SlackWebhookChannel,
    SmtpChannel,
    WebhookChannel,
)
from planmon.alerting.messages import TargetInfo
from planmon.alerting.routing import build_channels, load_routing
from planmon.errors import ConfigError

ROUTES = """
channels:
  ops-hook:
    type: webhook
    url: https://alerts.example.internal/planmon
  dba-slack:
    type: slack
    conn_id: planmon_slack
  dba-mail:
    type: smtp
    conn_id: planmon_smtp
    from: planmon@example.org
    to: dba@example.org
routes:
  - name: payments-prod
    match: {environment: prod, tags: {team: payments}, min_severity: high}
    channels: [dba-slack, dba-mail]
    stop: true
  - name: prod
    match: {environment: [prod, prod-eu]}
    channels: [ops-hook, log]
default_channels: []
digest:
  channels: [dba-mail]
  hour_utc: 6
"""

PROD_PAYMENTS = TargetInfo(name="a", environment="prod", tags={"team": "payments"})
PROD_OTHER = TargetInfo(name="b", environment="prod", tags={"team": "search"})
DEV = TargetInfo(name="c", environment="dev")


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "routes.yaml"
    path.write_text(text)
    return path


def test_default_routing_sends_everything_to_log() -> None:
    routing = load_routing(None)
    assert routing.channels_for(DEV, severity="low") == ["log"]
    assert routing.digest is None


def test_routes_match_environment_tags_severity_and_stop(tmp_path: Path) -> None:
    routing = load_routing(_write(tmp_path, ROUTES))
    assert routing.channels_for(PROD_PAYMENTS, severity="critical") == ["dba-slack", "dba-mail"]
    assert routing.channels_for(PROD_PAYMENTS, severity="medium") == ["ops-hook", "log"]
    assert routing.channels_for(PROD_OTHER, severity="critical") == ["ops-hook", "log"]
    assert routing.channels_for(DEV, severity="critical") == []  # default_channels: [] drops it
    assert routing.digest is not None and routing.digest.hour_utc == 6


def test_info_goes_nowhere_by_default_and_only_where_a_route_asks_for_it(tmp_path: Path) -> None:
    assert load_routing(None).channels_for(DEV, severity="info") == []  # not even default_channels
    routing = load_routing(_write(tmp_path, ROUTES))
    assert routing.channels_for(PROD_OTHER, severity="info") == []  # no min_severity: low and up
    assert routing.channels_for(PROD_OTHER, severity="low") == ["ops-hook", "log"]
    opted_in = load_routing(
        _write(tmp_path, "routes:\n  - match: {environment: dev, min_severity: info}\n    channels: [log]\n")
    )
    assert opted_in.channels_for(DEV, severity="info") == ["log"]
    assert opted_in.channels_for(PROD_OTHER, severity="info") == []


def test_tag_wildcard_and_kinds(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        "routes:\n  - match: {tags: {team: '*'}, kinds: plan_change}\n    channels: [log]\n"
        "default_channels: []\n",
    )
    routing = load_routing(path)
    assert routing.channels_for(PROD_OTHER, severity="low", kind="plan_change") == ["log"]
    assert routing.channels_for(PROD_OTHER, severity="low", kind="same_plan") == []
    assert routing.channels_for(DEV, severity="low", kind="plan_change") == []


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("routes:\n  - match: {min_severity: hgh}\n    channels: [log]\n", "routes[0].match.min_severity"),
        ("routes:\n  - channels: [pager]\n", "routes[0].channels: unknown channel 'pager'"),
        ("channels:\n  x: {type: webhook}\n", "set exactly one of url and conn_id"),
        ("channels:\n  x: {type: webhook, url: 'file:///etc/passwd'}\n", "url must start with https://"),
        ("channels:\n  x: {type: pager}\n", "channels.x"),
        ("routes:\n  - channels: [log]\n    colour: red\n", "routes[0].colour"),
        ("digest: {channels: [log], hour_utc: 25}\n", "digest.hour_utc"),
        ("routes: [\n", "not valid YAML at line"),
        ("- just\n- a list\n", "must be a mapping"),
    ],
)
def test_bad_files_name_the_file_and_the_field(tmp_path: Path, text: str, expected: str) -> None:
    path = _write(tmp_path, text)
    with pytest.raises(ConfigError) as raised:
        load_routing(path)
    assert str(path) in str(raised.value)
    assert expected in str(raised.value)


def test_missing_file_says_which_variable(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="PLANMON_ALERT_ROUTES"):
        load_routing(tmp_path / "nope.yaml")


def test_build_channels_uses_connections_and_degrades_per_channel(tmp_path: Path) -> None:
    connections = {
        "planmon_slack": SimpleNamespace(password="T000/B000/XXXX", host=None),
    }

    def get(conn_id: str) -> object:
        if conn_id not in connections:
            raise ConfigError(f"Airflow cannot resolve connection id {conn_id!r}")
        return connections[conn_id]

    routing = load_routing(_write(tmp_path, ROUTES))
    channels = build_channels(
        routing,
        default_log_path=tmp_path / "alerts.log",
        http_timeout=3,
        smtp_timeout=5,
        connection_getter=get,
    )
    assert isinstance(channels["log"], LogFileChannel)
    assert isinstance(channels["ops-hook"], WebhookChannel)
    slack = channels["dba-slack"]
    assert isinstance(slack, SlackWebhookChannel)
    assert slack.url == "https://hooks.slack.com/services/T000/B000/XXXX"
    assert isinstance(channels["dba-mail"], SmtpChannel)  # its connection is resolved when it sends
    del connections["planmon_slack"]
    channels = build_channels(
        routing,
        default_log_path=tmp_path / "alerts.log",
        http_timeout=3,
        smtp_timeout=5,
        connection_getter=get,
    )
    assert isinstance(channels["dba-slack"], BrokenChannel)
    assert isinstance(channels["ops-hook"], WebhookChannel)
