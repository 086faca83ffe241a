"""Simulated warehouse services: real HTTP services (FastAPI + uvicorn) that warehouse sagas call.

One process serves one instance of one service (``python -m sim.server``); all instances of a service
share their state (idempotency records, effects ledger, stock) in Redis, so they behave like one
service with one database. :mod:`sim.launcher` starts and stops whole clusters of them for tests.
"""

from sim.services import SERVICES

__all__ = ["SERVICES"]
