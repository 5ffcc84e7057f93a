"""Approval-gated remediation: the one workflow (``workflow.py``: propose, gate, decide, apply, verify,
conclude), the safety rails (``rails.py``) and verification (``verify.py``). What each engine can do,
and how its statements run, lives in ``planmon.engines.<engine>``; the records in ``planmon.model``.

No Airflow imports here (``planmon.airflow.remediate_tasks`` and ``planmon.commands.remediate`` are
thin callers). See docs/remediation.md.
"""
