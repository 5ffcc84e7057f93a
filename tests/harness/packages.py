"""Debian packages the tests install when missing (registry packages, never downloaded by hand):
chromium for the browser test, postgresql-15-hypopg for the approval desk's live prediction."""

from __future__ import annotations

import os
import shutil
import subprocess

INSTALL_TIMEOUT_S = 900


def apt_install(package: str) -> str | None:
    """Install Debian's ``package`` (a registry package) with apt-get; None, or why it failed."""
    apt = shutil.which("apt-get")
    if apt is None or os.geteuid() != 0:
        return f"{package} is not installed and cannot be installed here (needs apt-get as root): install it"
    environment = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for command in (
        [apt, "update", "-qq"],
        [apt, "install", "-y", "-qq", "--no-install-recommends", package],
    ):
        result = subprocess.run(
            command, env=environment, capture_output=True, text=True, timeout=INSTALL_TIMEOUT_S, check=False
        )
        if result.returncode != 0:
            return f"`{' '.join(command)}` failed: {result.stderr.strip()[-2000:]}"
    return None
