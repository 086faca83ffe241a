"""Times and numbers as the dashboard writes them."""

from __future__ import annotations

import math
from datetime import UTC, datetime

import pandas as pd


def to_time(epoch: float | None) -> pd.Timestamp | None:
    if epoch is None:
        return None
    return pd.Timestamp(round(float(epoch) * 1e6), unit="us", tz="UTC")


def clock(epoch: float | None) -> str:
    """``2026-01-31 08:00:01`` (UTC), or an empty string."""
    if epoch is None:
        return ""
    return datetime.fromtimestamp(float(epoch), UTC).strftime("%Y-%m-%d %H:%M:%S")


def ago(epoch: float | None, now: float) -> str:
    """``12 s ago``, ``3 min ago``, ``2.5 h ago``."""
    if epoch is None:
        return "never"
    seconds = max(0.0, now - float(epoch))
    if seconds < 90:
        return f"{seconds:.0f} s ago"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min ago"
    return f"{seconds / 3600:.1f} h ago"


def seconds_text(value: float | None) -> str:
    """A latency for a tile: µs, ms or s with three significant digits; an em dash for none."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    if value < 1e-3:
        return f"{value * 1e6:.3g} µs"
    if value < 1:
        return f"{value * 1e3:.3g} ms"
    return f"{value:.3g} s"


def percent_text(value: float | None, digits: int = 1) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    return f"{value * 100:.{digits}f} %"
