"""Airflow glue: task callables, notifiers and the UI plugin used by ``dags/``.

This is the only part of planmon that imports Airflow.
"""
