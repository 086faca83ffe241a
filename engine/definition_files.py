"""Reading workflow definitions from files: YAML, JSON, Python modules, or a directory of them."""

from __future__ import annotations

import importlib.util
import json
import uuid
from collections.abc import Mapping
from pathlib import Path

import yaml

from engine.domain.definition import WorkflowDefinition, parse_definition
from engine.errors import DefinitionError, EngineError


def load_definitions(path: str | Path) -> list[WorkflowDefinition]:
    """Definitions from a YAML/JSON file (one, a list, or ``definitions: [...]``), a Python file
    (every WorkflowDefinition at module level), or every such file in a directory."""
    p = Path(path)
    if not p.exists():
        raise EngineError(f"no such file or directory: {p}")
    if p.is_dir():
        out: list[WorkflowDefinition] = []
        for child in sorted(p.iterdir()):
            if child.suffix in (".yaml", ".yml", ".json") and not child.name.startswith("_"):
                out.extend(load_definitions(child))
            elif child.suffix == ".py" and not child.name.startswith("_"):
                # In a directory, Python files may hold handlers only; named explicitly they must define.
                out.extend(_python_definitions(child, required=False))
        return out
    if p.suffix == ".py":
        return _python_definitions(p)
    text = p.read_text()
    try:
        data = json.loads(text) if p.suffix == ".json" else yaml.safe_load(text)
    except (json.JSONDecodeError, yaml.YAMLError) as exc:
        raise DefinitionError([f"{p}: not valid {'JSON' if p.suffix == '.json' else 'YAML'}: {exc}"])
    if isinstance(data, Mapping) and "definitions" in data and "steps" not in data:
        data = data["definitions"]
    items = data if isinstance(data, list) else [data]
    out = []
    for item in items:
        try:
            out.append(parse_definition(item))
        except DefinitionError as exc:
            raise DefinitionError([f"{p}: {q}" for q in exc.problems], exc.name)
    return out


def _python_definitions(p: Path, required: bool = True) -> list[WorkflowDefinition]:
    spec = importlib.util.spec_from_file_location(f"wes_defs_{uuid.uuid4().hex[:8]}", p)
    if spec is None or spec.loader is None:
        raise EngineError(f"cannot load Python file {p}")
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        raise DefinitionError([f"{p}: importing it failed: {type(exc).__name__}: {exc}"])
    found = [v for v in vars(module).values() if isinstance(v, WorkflowDefinition)]
    if not found and required:
        raise DefinitionError([f"{p}: defines no WorkflowDefinition at module level"])
    return found
