"""The building blocks of the provisioned Grafana dashboards: a board that lays panels out in the
24-column grid, Prometheus targets with the fixed datasource uid, thresholds, quantile queries."""

from __future__ import annotations

from typing import Any

DS = {"type": "prometheus", "uid": "prometheus"}
WT = 'workflow_type=~"$workflow_type"'


def target(expr: str, legend: str = "", ref: str = "A", instant: bool = False) -> dict[str, Any]:
    out: dict[str, Any] = {"datasource": DS, "expr": expr, "refId": ref, "legendFormat": legend or "__auto"}
    if instant:
        out["instant"] = True
        out["range"] = False
    return out


def thresholds(*steps: tuple[str, float | None]) -> dict[str, Any]:
    return {"mode": "absolute", "steps": [{"color": c, "value": v} for c, v in steps]}


class Board:
    """Lays panels out left to right, wrapping at 24 columns."""

    def __init__(self, uid: str, title: str, description: str, variables: bool = False):
        self.uid, self.title, self.description = uid, title, description
        self.panels: list[dict[str, Any]] = []
        self.x = self.y = self.row_h = 0
        self.variables = variables

    def _place(self, w: int, h: int) -> dict[str, int]:
        if self.x + w > 24:
            self.x, self.y, self.row_h = 0, self.y + self.row_h, 0
        pos = {"x": self.x, "y": self.y, "w": w, "h": h}
        self.x += w
        self.row_h = max(self.row_h, h)
        return pos

    def row(self, title: str) -> None:
        if self.x:
            self.x, self.y, self.row_h = 0, self.y + self.row_h, 0
        self.panels.append(
            {"type": "row", "title": title, "collapsed": False, "gridPos": self._place(24, 1), "panels": []}
        )
        self.x, self.y, self.row_h = 0, self.y + 1, 0

    def panel(
        self,
        kind: str,
        title: str,
        targets: list[dict[str, Any]],
        unit: str = "short",
        w: int = 8,
        h: int = 8,
        description: str = "",
        options: dict[str, Any] | None = None,
        defaults: dict[str, Any] | None = None,
    ) -> None:
        for i, t in enumerate(targets):
            t["refId"] = chr(ord("A") + i)
        field_defaults: dict[str, Any] = {"unit": unit}
        field_defaults.update(defaults or {})
        self.panels.append(
            {
                "type": kind,
                "title": title,
                "description": description,
                "datasource": DS,
                "gridPos": self._place(w, h),
                "targets": targets,
                "fieldConfig": {"defaults": field_defaults, "overrides": []},
                "options": options or {},
            }
        )

    def timeseries(self, title: str, targets: list[dict[str, Any]], unit: str = "short", **kw: Any) -> None:
        self.panel("timeseries", title, targets, unit, **kw)

    def stat(self, title: str, targets: list[dict[str, Any]], unit: str = "short", **kw: Any) -> None:
        kw.setdefault("w", 4)
        kw.setdefault("h", 5)
        kw.setdefault("options", {"reduceOptions": {"calcs": ["lastNotNull"]}, "colorMode": "background"})
        self.panel("stat", title, targets, unit, **kw)

    def states(self, title: str, targets: list[dict[str, Any]], mappings: list[dict[str, Any]], **kw: Any) -> None:
        kw.setdefault("w", 12)
        kw.setdefault("defaults", {})
        kw["defaults"]["mappings"] = mappings
        kw["defaults"].setdefault("color", {"mode": "thresholds"})
        self.panel("state-timeline", title, targets, "short", **kw)

    def to_json(self) -> dict[str, Any]:
        for i, p in enumerate(self.panels, 1):
            p["id"] = i
        templating: list[dict[str, Any]] = []
        if self.variables:
            query = "label_values(wes_workflows_started_total, workflow_type)"
            templating.append(
                {
                    "name": "workflow_type",
                    "label": "workflow type",
                    "type": "query",
                    "datasource": DS,
                    "query": {"query": query, "refId": "workflow_type"},
                    "definition": query,
                    "includeAll": True,
                    "allValue": ".*",
                    "multi": True,
                    "current": {"text": "All", "value": "$__all"},
                    "refresh": 2,
                    "sort": 1,
                }
            )
        return {
            "uid": self.uid,
            "title": self.title,
            "description": self.description,
            "tags": ["wes"],
            "editable": False,
            "graphTooltip": 1,
            "schemaVersion": 39,
            "version": 1,
            "refresh": "10s",
            "time": {"from": "now-1h", "to": "now"},
            "timezone": "browser",
            "templating": {"list": templating},
            "annotations": {"list": []},
            "links": [{"title": "WES", "type": "dashboards", "tags": ["wes"], "asDropdown": True}],
            "panels": self.panels,
        }


def p99(metric: str, by: str = "", matcher: str = "") -> str:
    group = f"le{', ' + by if by else ''}"
    sel = f"{{{matcher}}}" if matcher else ""
    return f"histogram_quantile(0.99, sum by ({group}) (rate({metric}_bucket{sel}[$__rate_interval])))"


def quantile(q: float, metric: str, by: str = "", matcher: str = "") -> str:
    return p99(metric, by, matcher).replace("histogram_quantile(0.99,", f"histogram_quantile({q},")
