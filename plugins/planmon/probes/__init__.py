"""Probes: user-defined read-only check queries with thresholds, plan capture and alerts.

``definitions`` (YAML + validation), ``evaluate`` (thresholds), ``guard`` (read-only check),
``runner`` (one probe on one target), ``builtin`` (the probes planmon ships). No Airflow imports.
"""
