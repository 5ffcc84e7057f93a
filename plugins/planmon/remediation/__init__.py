"""Approval-gated remediation: proposals per engine, safety rails, apply, verification, rollback.

No Airflow imports here (``planmon.airflow.remediate_tasks`` is the glue). See docs/remediation.md.
"""
