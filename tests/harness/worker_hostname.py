"""``[core] hostname_callable`` of the harness's Celery workers (tests/harness/scheduler.py).

Airflow records ``socket.getfqdn()`` as a task instance's hostname, the same for two workers on one
machine; the harness gives each worker's processes its own name (the one passed to ``-H``) so a
test can tell which worker ran a task. Imports nothing of the test suite: workers import it.
"""

from __future__ import annotations

import os
import socket

VARIABLE = "HARNESS_WORKER_HOSTNAME"


def worker_hostname() -> str:
    return os.environ.get(VARIABLE) or socket.getfqdn()
