"""The API's operations as its OpenAPI document declares them, matched by method and path: the route
template (a bounded metrics label) and the query parameters each operation takes."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from starlette.routing import compile_path


@dataclass(frozen=True)
class Operation:
    method: str
    template: str
    query: frozenset[str]
    regex: re.Pattern[str]


class OperationIndex:
    def __init__(self, spec: dict[str, Any]):
        self._by_method: dict[str, list[Operation]] = {}
        for template, ops in spec.get("paths", {}).items():
            regex = compile_path(template)[0]
            for method, op in ops.items():
                query = frozenset(p["name"] for p in op.get("parameters", []) if p.get("in") == "query")
                self._by_method.setdefault(method.upper(), []).append(Operation(method.upper(), template, query, regex))
        for ops in self._by_method.values():
            ops.sort(key=lambda op: op.template.count("{"))  # /workflows/counts before /workflows/{id}

    def find(self, method: str, path: str) -> Operation | None:
        for op in self._by_method.get("GET" if method == "HEAD" else method, ()):
            if op.regex.match(path):
                return op
        return None
