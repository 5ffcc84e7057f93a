"""Channels against loopback servers and a fake SMTP: delivery, failures, redirects, TLS rules."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from types import SimpleNamespace
from typing import Any, ClassVar

import pytest

from planmon.alerting import channels as channels_module
from planmon.alerting.channels import (
    DeliveryError,
    LogFileChannel,
    SlackWebhookChannel,
    SmtpChannel,
    WebhookChannel,
    post_json,
    slack_payload,
)
from planmon.alerting.messages import AlertMessage
from tests.harness.servers import free_port

MESSAGE = AlertMessage(
    dedup_key="regression:1:high",
    kind="regression",
    severity="high",
    title="[HIGH] plan change on orders-prod: query q-1 CPU x3.2",
    lines=("What changed: <scan> & more",),
    facts=(("Target", "orders-prod"),),
    links=(("planmon", "https://a.example/planmon/regressions/1"),),
)


class _Handler(BaseHTTPRequestHandler):
    received: ClassVar[list[tuple[str, dict[str, Any]]]] = []

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        type(self).received.append((self.path, body))
        if self.path.startswith("/fail"):
            self._reply(500, b"boom token=abc123")
        elif self.path == "/elsewhere":
            self._redirect(302, "http://198.51.100.7/hook")  # another host: must not be followed
        elif self.path == "/moved":
            self._redirect(307, f"http://127.0.0.1:{self.server.server_port}/hook")
        elif self.path == "/to-get":
            self._redirect(302, f"http://127.0.0.1:{self.server.server_port}/hook")
        else:
            self._reply(200, b"ok")

    def _reply(self, code: int, body: bytes) -> None:
        self.send_response(code)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _redirect(self, code: int, location: str) -> None:
        self.send_response(code)
        self.send_header("Location", location)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *_args: Any) -> None:  # keep test output quiet
        return


@pytest.fixture
def server() -> Iterator[tuple[str, list[tuple[str, dict[str, Any]]]]]:
    _Handler.received = []
    httpd = HTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_port}", _Handler.received
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)


def test_log_channel_appends_json_lines(tmp_path: Path) -> None:
    channel = LogFileChannel(path=tmp_path / "sub" / "alerts.log")
    channel.send(MESSAGE)
    channel.send(MESSAGE)
    lines = (tmp_path / "sub" / "alerts.log").read_text().splitlines()
    assert len(lines) == 2
    assert json.loads(lines[0])["dedup_key"] == "regression:1:high"


def test_log_channel_failure_is_a_delivery_error(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    with pytest.raises(DeliveryError, match="cannot append"):
        LogFileChannel(path=tmp_path / "file" / "alerts.log").send(MESSAGE)


def test_webhook_posts_the_message(server: tuple[str, list[Any]]) -> None:
    base, received = server
    WebhookChannel(name="hook", url=f"{base}/hook", timeout=5).send(MESSAGE)
    path, body = received[0]
    assert path == "/hook"
    assert body["dedup_key"] == "regression:1:high"
    assert body["text"].startswith("[HIGH]")


def test_webhook_http_error_hides_the_url_path_and_secrets(server: tuple[str, list[Any]]) -> None:
    base, _ = server
    with pytest.raises(DeliveryError) as raised:
        WebhookChannel(name="hook", url=f"{base}/fail/SECRETPATH", timeout=5).send(MESSAGE)
    text = str(raised.value)
    assert "HTTP 500" in text
    assert "SECRETPATH" not in text
    assert "abc123" not in text


def test_closed_port_is_a_delivery_error() -> None:
    with pytest.raises(DeliveryError, match="unreachable"):
        post_json(f"http://127.0.0.1:{free_port()}/hook", {}, timeout=2)


def test_redirects_only_to_the_same_host_keeping_the_post(server: tuple[str, list[Any]]) -> None:
    base, received = server
    with pytest.raises(DeliveryError, match="another host"):
        post_json(f"{base}/elsewhere", {"a": 1}, timeout=5)
    with pytest.raises(DeliveryError, match="refused redirect"):
        post_json(f"{base}/to-get", {"a": 1}, timeout=5)  # a 302 would turn the POST into a GET
    assert post_json(f"{base}/moved", {"a": 2}, timeout=5) == 200
    assert received[-1] == ("/hook", {"a": 2})


def test_only_http_schemes() -> None:
    with pytest.raises(DeliveryError, match="only http"):
        post_json("file:///etc/hostname", {}, timeout=1)


def test_slack_payload_blocks_escaped(server: tuple[str, list[Any]]) -> None:
    payload = slack_payload(MESSAGE)
    assert payload["text"] == MESSAGE.title
    assert payload["blocks"][1]["text"]["text"] == "What changed: &lt;scan&gt; &amp; more"
    assert "<https://a.example/planmon/regressions/1|planmon>" in json.dumps(payload)
    base, received = server
    SlackWebhookChannel(name="slack", url=f"{base}/services/T/B/X", timeout=5).send(MESSAGE)
    assert received[0][1]["blocks"][0]["type"] == "header"


class _FakeSMTP:
    sessions: ClassVar[list[_FakeSMTP]] = []

    def __init__(self, host: str, port: int, timeout: float, **_kwargs: Any) -> None:
        self.host, self.port, self.calls = host, port, []
        type(self).sessions.append(self)

    def starttls(self, context: Any) -> None:
        self.calls.append("starttls")

    def login(self, user: str, password: str) -> None:
        self.calls.append(f"login {user}")

    def send_message(self, mail: Any) -> None:
        self.calls.append(f"send {mail['To']} {mail['Subject']}")

    def close(self) -> None:
        self.calls.append("close")

    def __enter__(self) -> _FakeSMTP:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.calls.append("quit")


def _smtp_connection(login: str | None = "planmon") -> Any:
    return SimpleNamespace(
        host="127.0.0.1", port=2525, login=login, password="pw", extra_dejson={"from_email": "pm@example.org"}
    )


def test_smtp_uses_starttls_and_the_connection(monkeypatch: pytest.MonkeyPatch) -> None:
    _FakeSMTP.sessions = []
    monkeypatch.setattr(channels_module.smtplib, "SMTP", _FakeSMTP)
    channel = SmtpChannel(
        name="mail",
        conn_id="planmon_smtp",
        recipients=("dba@example.org",),
        connection_getter=lambda _id: _smtp_connection(),
    )
    channel.send(MESSAGE)
    session = _FakeSMTP.sessions[0]
    assert (session.host, session.port) == ("127.0.0.1", 2525)
    assert session.calls[:3] == ["starttls", "login planmon", f"send dba@example.org {MESSAGE.title}"]


def test_smtp_refuses_credentials_without_tls(monkeypatch: pytest.MonkeyPatch) -> None:
    _FakeSMTP.sessions = []
    monkeypatch.setattr(channels_module.smtplib, "SMTP", _FakeSMTP)
    channel = SmtpChannel(
        name="mail",
        conn_id="planmon_smtp",
        recipients=("dba@example.org",),
        starttls=False,
        connection_getter=lambda _id: _smtp_connection(),
    )
    with pytest.raises(DeliveryError, match="without TLS"):
        channel.send(MESSAGE)
    assert not any(call.startswith("send") for call in _FakeSMTP.sessions[0].calls)


def test_smtp_unreachable_is_a_delivery_error() -> None:
    port = free_port()
    connection = SimpleNamespace(host="127.0.0.1", port=port, login=None, password=None, extra_dejson={})
    channel = SmtpChannel(
        name="mail",
        conn_id="planmon_smtp",
        recipients=("dba@example.org",),
        sender="pm@example.org",
        timeout=2,
        connection_getter=lambda _id: connection,
    )
    with pytest.raises(DeliveryError, match="smtp 'mail'"):
        channel.send(MESSAGE)
