"""The control API of the WES orchestration engine (FastAPI, under /api/v1).

``api.main.create_app`` builds the app (``uvicorn api.main:create_app --factory``);
``api.component.ApiComponent`` runs it for `wes up`; ``api.auth.ensure_admin_key`` creates the first key.
"""
