"""The operator dashboard: a Streamlit multipage app (``dashboard/app.py``) that talks only to the
control API over HTTP. ``wes_cli.components.DashboardComponent`` runs it for ``wes up``."""
