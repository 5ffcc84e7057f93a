"""Headless Chromium for the UI's end-to-end tests, driven over the DevTools protocol on a pipe.

Debian's ``chromium`` package is installed with apt-get when missing (a registry package). The
browser is driven with ``--remote-debugging-pipe`` (JSON messages separated by NUL bytes on file
descriptors 3 and 4): no extra Python package, no port. That is what lets a test hand the browser
Airflow's session cookie (``_token``, as Airflow's own login sets it) before opening a page, then
read the DOM and take full-page screenshots.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import json
import os
import queue
import shutil
import subprocess
import threading
import time
from pathlib import Path
from types import TracebackType
from typing import Any

from tests.harness.packages import apt_install

COMMAND_TIMEOUT_S = 60
# Injected into every page and frame before its own code runs (DevTools scripts are exempt from the
# page's Content-Security-Policy): records each violation the page's policy reports.
CSP_RECORDER = """
window.__cspViolations = [];
document.addEventListener("securitypolicyviolation", (event) => {
  const blocked = event.blockedURI || "inline";
  window.__cspViolations.push(`${event.effectiveDirective} blocked ${blocked} in ${event.documentURI}`);
});
"""


class ChromiumUnavailable(RuntimeError):
    pass


def ensure_chromium() -> str:
    """Path of the ``chromium`` binary, installing Debian's package first when it is missing."""
    found = shutil.which("chromium")
    if found:
        return found
    problem = apt_install("chromium")
    if problem:
        raise ChromiumUnavailable(problem)
    found = shutil.which("chromium")
    if not found:
        raise ChromiumUnavailable("apt-get installed chromium but no `chromium` binary is on PATH")
    return found


def _high_fd(fd: int) -> int:
    """A copy of ``fd`` numbered 10 or more, so moving it to 3/4 in the child cannot clobber another."""
    moved = fcntl.fcntl(fd, fcntl.F_DUPFD, 10)
    os.close(fd)
    return moved


class Browser:
    """One headless Chromium with one page (tab); use as a context manager."""

    def __init__(self, binary: str, profile: Path, *, width: int = 1400, height: int = 1000) -> None:
        self.binary, self.profile, self.size = binary, profile, (width, height)
        self._next_id = 0
        self._responses: dict[int, dict[str, Any]] = {}
        self._events: queue.Queue[dict[str, Any]] = queue.Queue()
        self._lock = threading.Condition()
        self.session: str | None = None
        self.console: list[str] = []  # every console and log entry of the session, never cleared

    def __enter__(self) -> Browser:
        to_browser_read, to_browser_write = (_high_fd(fd) for fd in os.pipe())
        from_browser_read, from_browser_write = (_high_fd(fd) for fd in os.pipe())

        def wire_pipes() -> None:  # runs in the child before exec: the browser reads 3, writes 4
            os.dup2(to_browser_read, 3)
            os.dup2(from_browser_write, 4)

        arguments = [
            self.binary, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync",
            "--disable-dev-shm-usage", f"--user-data-dir={self.profile}",
            f"--window-size={self.size[0]},{self.size[1]}", "--remote-debugging-pipe", "about:blank",
        ]  # fmt: skip
        self.log = (self.profile.parent / f"{self.profile.name}.log").open("wb")
        self.process = subprocess.Popen(
            arguments,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            pass_fds=(3, 4),
            preexec_fn=wire_pipes,  # noqa: PLW1509  (it only calls dup2, which is safe between fork and exec)
        )
        os.close(to_browser_read)
        os.close(from_browser_write)
        self._write = to_browser_write
        self._reader = threading.Thread(target=self._read_loop, args=(from_browser_read,), daemon=True)
        self._reader.start()
        target = self.call("Target.createTarget", {"url": "about:blank"})["targetId"]
        self.session = self.call("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        self.call("Page.enable", session=True)
        self.call("Log.enable", session=True)  # CSP violations are reported here as errors
        self.call("Runtime.enable", session=True)
        self.call("Page.addScriptToEvaluateOnNewDocument", {"source": CSP_RECORDER}, session=True)
        self.call("Emulation.setDeviceMetricsOverride",
                  {"width": self.size[0], "height": self.size[1], "deviceScaleFactor": 1, "mobile": False},
                  session=True)  # fmt: skip
        return self

    def __exit__(self, *_exc: object | TracebackType | None) -> None:
        with contextlib.suppress(TimeoutError, OSError, RuntimeError):
            self.call("Browser.close", timeout=10)
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=15)
        os.close(self._write)
        self.log.close()

    # -- protocol ---------------------------------------------------------------------------------

    def _read_loop(self, fd: int) -> None:
        buffer = b""
        with os.fdopen(fd, "rb", buffering=0) as stream:
            while chunk := stream.read(65536):
                buffer += chunk
                *messages, buffer = buffer.split(b"\0")
                for raw in messages:
                    self._dispatch(json.loads(raw))

    def _dispatch(self, message: dict[str, Any]) -> None:
        if "id" in message:
            with self._lock:
                self._responses[message["id"]] = message
                self._lock.notify_all()
        else:
            params = message.get("params") or {}
            if message.get("method") == "Log.entryAdded":
                entry = params.get("entry") or {}
                self.console.append(f"{entry.get('level')}: {entry.get('text')} ({entry.get('url')})")
            elif message.get("method") == "Runtime.consoleAPICalled":
                texts = [str(a.get("value", a.get("description", ""))) for a in params.get("args", [])]
                self.console.append(f"{params.get('type')}: {' '.join(texts)}")
            self._events.put(message)

    def call(
        self, method: str, params: dict[str, Any] | None = None, *, session: bool = False,
        timeout: float = COMMAND_TIMEOUT_S,
    ) -> dict[str, Any]:  # fmt: skip
        """Send one command and wait for its result (RuntimeError with the protocol's error)."""
        with self._lock:
            self._next_id += 1
            message_id = self._next_id
        message: dict[str, Any] = {"id": message_id, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = self.session
        os.write(self._write, json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + timeout
        with self._lock:
            while message_id not in self._responses:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"no answer to {method} within {timeout} s")
                self._lock.wait(left)
            response = self._responses.pop(message_id)
        if "error" in response:
            raise RuntimeError(f"{method} failed: {response['error']}")
        return dict(response.get("result") or {})

    def _wait_event(self, name: str, timeout: float = COMMAND_TIMEOUT_S) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"no {name} event within {timeout} s")
            try:
                event = self._events.get(timeout=left)
            except queue.Empty:
                continue
            if event.get("method") == name and event.get("sessionId") == self.session:
                return event

    # -- what tests use ---------------------------------------------------------------------------

    def set_cookie(self, name: str, value: str, url: str) -> None:
        """Set a cookie as Airflow's login does (HttpOnly, SameSite=Lax)."""
        cookie = {"name": name, "value": value, "url": url, "httpOnly": True, "sameSite": "Lax"}
        result = self.call("Network.setCookie", cookie, session=True)
        if result.get("success") is False:
            raise RuntimeError(f"the browser refused cookie {name} for {url}")

    def delete_cookie(self, name: str, url: str) -> None:
        """Drop a cookie, as when a session ends."""
        self.call("Network.deleteCookies", {"name": name, "url": url}, session=True)

    def open(self, url: str) -> str:
        """Navigate and wait for the load event; return the URL the page ended on."""
        while not self._events.empty():
            self._events.get_nowait()
        result = self.call("Page.navigate", {"url": url}, session=True)
        if result.get("errorText"):
            raise RuntimeError(f"opening {url} failed: {result['errorText']}")
        self._wait_event("Page.loadEventFired")
        return str(self.evaluate("location.href"))

    def evaluate(self, expression: str) -> Any:
        result = self.call(
            "Runtime.evaluate", {"expression": expression, "returnByValue": True}, session=True
        )
        if "exceptionDetails" in result:
            raise RuntimeError(f"{expression!r} raised {result['exceptionDetails']}")
        return result["result"].get("value")

    def choose_file(self, selector: str, path: Path) -> None:
        """Put a file into a file input, as a person picking it would."""
        document = self.call("DOM.getDocument", session=True)["root"]["nodeId"]
        node = self.call("DOM.querySelector", {"nodeId": document, "selector": selector}, session=True)[
            "nodeId"
        ]
        if not node:
            raise RuntimeError(f"no element matches {selector!r}")
        self.call("DOM.setFileInputFiles", {"files": [str(path)], "nodeId": node}, session=True)

    def submit(self, selector: str) -> str:
        """Submit a form and wait for the page it leads to; return that page's URL."""
        while not self._events.empty():
            self._events.get_nowait()
        self.evaluate(f"document.querySelector({json.dumps(selector)}).submit()")
        self._wait_event("Page.loadEventFired")
        return str(self.evaluate("location.href"))

    def csp_violations(self, frame: str | None = None) -> list[str]:
        """What the Content-Security-Policy blocked in the page (or in the iframe ``frame`` selects):
        the violations the page reported, and every console entry of the session naming the policy."""
        window = "window" if frame is None else f"document.querySelector({json.dumps(frame)}).contentWindow"
        reported = self.evaluate(f"{window}.__cspViolations")
        if reported is None:
            raise RuntimeError(f"no CSP recorder in {frame or 'the page'}: it was not opened by this browser")
        logged = [line for line in self.console if "Content Security Policy" in line]
        return [*reported, *logged]

    def click_at(self, x: float, y: float) -> None:
        """A real left click (trusted mouse events) at page coordinates ``x``, ``y``."""
        for kind in ("mousePressed", "mouseReleased"):
            event = {"type": kind, "x": x, "y": y, "button": "left", "clickCount": 1}
            self.call("Input.dispatchMouseEvent", event, session=True)

    def pause(self, seconds: float) -> None:
        """Let the page run for a while (timers, fetches of a JavaScript app)."""
        expression = f"new Promise(resolve => setTimeout(resolve, {int(seconds * 1000)}))"
        self.call("Runtime.evaluate", {"expression": expression, "awaitPromise": True}, session=True)

    def screenshot(self, path: Path) -> Path:
        """A PNG of the whole page (beyond the viewport), written to ``path``."""
        metrics = self.call("Page.getLayoutMetrics", session=True)
        size = metrics.get("cssContentSize") or metrics["contentSize"]
        clip = {
            "x": 0,
            "y": 0,
            "width": max(size["width"], self.size[0]),
            "height": size["height"],
            "scale": 1,
        }
        shot = self.call(
            "Page.captureScreenshot",
            {"format": "png", "captureBeyondViewport": True, "clip": clip},
            session=True,
        )
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(shot["data"]))
        return path
