"""The control API of the WES orchestration engine (FastAPI, under /api/v1).

``api.main.create_app`` builds the app (``uvicorn api.main:create_app --factory``);
``wes_cli.components.ApiComponent`` runs it for `wes up`; ``api.auth.ensure_admin_key`` creates the
first key. Everything the API reads or writes goes through the ``engine`` package's public names (its
stores for keys, audit, rate limits and the live feed); ``api`` never imports redis.
"""
