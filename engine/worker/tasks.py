"""RQ entry points. Thin: the work is in the process's Runtime."""

from __future__ import annotations


def dispatch() -> int:
    """Advance due sagas until idle past the linger time or the slice ends; returns sagas advanced."""
    from engine.worker.runtime import current_runtime

    return current_runtime().run_dispatch()
