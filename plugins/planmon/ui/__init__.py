"""planmon's pages inside the Airflow UI: a FastAPI app (``app.create_ui_app``) rendering on the
server, SVG charts (``charts``), page data (``views``). Imports no Airflow: the plugin injects the
login dependency and the approvals reader (``planmon.airflow.ui``)."""
