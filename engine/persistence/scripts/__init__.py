"""Lua scripts: every multi-key state change is one atomic script.

Each script validates everything before its first write, because Redis does not roll back a script
that fails half way. All keys come in through KEYS. One module per concern; the stores use them as
``scripts.COMMIT`` and so on.
"""

from __future__ import annotations

from engine.persistence.scripts.breaker import BREAKER_BEGIN, BREAKER_END, BREAKER_FORCE
from engine.persistence.scripts.definitions import SAVE_DEFINITION
from engine.persistence.scripts.dispatch import ACQUIRE, CLAIM, EXIT, RELEASE, RENEW, TICK
from engine.persistence.scripts.waveless import INTAKE_ACK, INTAKE_APPEND, LEADER, RESIGN
from engine.persistence.scripts.workflow import COMMIT, CREATE, READ

__all__ = [
    "ACQUIRE",
    "BREAKER_BEGIN",
    "BREAKER_END",
    "BREAKER_FORCE",
    "CLAIM",
    "COMMIT",
    "CREATE",
    "EXIT",
    "INTAKE_ACK",
    "INTAKE_APPEND",
    "LEADER",
    "READ",
    "RELEASE",
    "RENEW",
    "RESIGN",
    "SAVE_DEFINITION",
    "TICK",
]
