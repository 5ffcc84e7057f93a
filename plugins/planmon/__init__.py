"""planmon: execution-plan regression monitor run as Apache Airflow 3 DAGs.

The library under this package imports no Airflow outside ``planmon.airflow``: it runs and is
tested without a live Airflow.
"""

from __future__ import annotations

__version__ = "0.1.0"
