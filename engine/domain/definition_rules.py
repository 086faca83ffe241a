"""Structural rules of a workflow definition: names and ids, compensation presence, retry policies,
``depends_on`` references and cycles, the input JSON Schema against the defaults, resource templates.

Every problem is collected (not just the first) so an author sees them all at once.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import jsonschema

if TYPE_CHECKING:
    from engine.domain.definition import WorkflowDefinition

NAME_RE = re.compile(r"[a-z0-9][a-z0-9_.-]{0,79}")
STEP_ID_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")


def validate_structure(
    definition: WorkflowDefinition, steps_parsed: bool = True, positions: list[int] | None = None
) -> list[str]:
    problems: list[str] = []
    if not definition.name or not NAME_RE.fullmatch(definition.name):
        problems.append(f"name: {definition.name!r} must be 1-80 lowercase letters, digits, '.', '_' or '-'")
    if definition.version is not None and definition.version < 1:
        problems.append("version: must be >= 1")
    if not definition.steps and steps_parsed:
        problems.append("steps: a definition needs at least one step")
    if definition.timeout <= 0:
        problems.append("timeout: must be > 0")
    seen: set[str] = set()
    duplicates = False
    for i, step in enumerate(definition.steps):
        where = f"steps[{positions[i] if positions else i}] ({step.id})"
        if not STEP_ID_RE.fullmatch(step.id):
            problems.append(f"{where}: id must be letters, digits, '_' or '-' (max 64)")
        if step.id in seen:
            problems.append(f"{where}: duplicate step id {step.id!r}")
            duplicates = True
        seen.add(step.id)
        if step.compensation is None:
            problems.append(f"{where}: missing compensation (every step must declare one)")
        else:
            problems.extend(step.compensation.validate(f"{where}.compensation"))
        problems.extend(step.retry.validate(f"{where}.retry"))
        if step.timeout <= 0:
            problems.append(f"{where}.timeout: must be > 0")
    if steps_parsed and seen and not duplicates:
        deps = definition.dependencies()
        for step_id, needs in deps.items():
            for dep in needs:
                if dep not in seen:
                    problems.append(f"step {step_id!r}: depends_on unknown step {dep!r}")
                elif dep == step_id:
                    problems.append(f"step {step_id!r}: depends on itself")
        cycle = find_cycle({k: tuple(d for d in v if d in seen) for k, v in deps.items()})
        if cycle:
            problems.append("cycle in depends_on: " + " -> ".join(cycle))
    if definition.validation_rules.input_schema is not None:
        schema = definition.validation_rules.input_schema
        if not isinstance(schema, Mapping):
            problems.append("validation_rules.input_schema: expected a JSON Schema object")
        else:
            try:
                jsonschema.Draft202012Validator.check_schema(schema)
            except jsonschema.SchemaError as exc:
                problems.append(f"validation_rules.input_schema: invalid JSON Schema: {exc.message}")
            else:
                # Defaults alone need not hold every required field, but must not contradict the schema.
                validator = jsonschema.Draft202012Validator(schema)
                for err in validator.iter_errors(dict(definition.defaults)):
                    if err.validator != "required":
                        path = "/".join(str(p) for p in err.absolute_path) or "(root)"
                        problems.append(f"defaults.{path}: {err.message}")
    for template in definition.resources:
        if not re.fullmatch(r"[\w:.{}/-]+", template):
            problems.append(f"resources: {template!r} may only use letters, digits, ':', '.', '/', '-' and {{field}}")
    return problems


def find_cycle(graph: Mapping[str, Sequence[str]]) -> list[str] | None:
    """A cycle as a path ``[a, b, ..., a]`` if the dependency graph has one."""
    white, grey, black = 0, 1, 2
    color = dict.fromkeys(graph, white)
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        color[node] = grey
        stack.append(node)
        for dep in graph.get(node, ()):
            if color.get(dep) == grey:
                return [*stack[stack.index(dep) :], dep]
            if color.get(dep) == white:
                found = visit(dep)
                if found:
                    return found
        stack.pop()
        color[node] = black
        return None

    for node in graph:
        if color[node] == white:
            found = visit(node)
            if found:
                return found
    return None
