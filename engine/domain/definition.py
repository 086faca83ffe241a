"""Workflow and step definitions (templates), parsed from dicts (YAML/JSON) or built in Python.

Validation here is the pure part: structure, durations, retry policies, compensation presence,
``depends_on`` references and cycles, the input JSON Schema and triggers. Whether handlers can be
imported is checked by the integration layer, which adds its problems to the same error.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import jsonschema
import orjson
from croniter import croniter

from engine.domain.definition_rules import validate_structure
from engine.domain.policies import (
    DEFAULT_STEP_TIMEOUT,
    DEFAULT_WORKFLOW_TIMEOUT,
    ActionRef,
    CompensationAction,
    RetryPolicy,
    parse_duration,
)
from engine.domain.status import ConsistencyLevel, TriggerKind
from engine.errors import DefinitionError, InputValidationError


@dataclass(frozen=True)
class WorkflowTrigger:
    kind: TriggerKind = TriggerKind.MANUAL
    stream: str | None = None
    """EVENT: each entry on this Redis stream starts an instance (its fields are the input)."""
    cron: str | None = None
    """SCHEDULE: five-field cron expression, evaluated in UTC."""
    input: Mapping[str, Any] = field(default_factory=dict)
    """SCHEDULE: input of each scheduled start."""

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"type": self.kind.value}
        if self.stream:
            out["stream"] = self.stream
        if self.cron:
            out["cron"] = self.cron
        if self.input:
            out["input"] = dict(self.input)
        return out

    @classmethod
    def parse(cls, data: Any, where: str = "trigger") -> WorkflowTrigger:
        if data is None:
            return cls()
        if isinstance(data, str):
            data = {"type": data}
        if not isinstance(data, Mapping):
            raise ValueError(f"{where}: expected a mapping, got {data!r}")
        raw = str(data.get("type", "manual")).lower()
        try:
            kind = TriggerKind(raw)
        except ValueError:
            raise ValueError(f"{where}.type: {raw!r} is not one of manual, event, schedule")
        trigger = cls(kind=kind, stream=data.get("stream"), cron=data.get("cron"), input=data.get("input") or {})
        if kind is TriggerKind.EVENT and not (isinstance(trigger.stream, str) and trigger.stream):
            raise ValueError(f"{where}: an event trigger needs 'stream: <redis stream name>'")
        if kind is TriggerKind.SCHEDULE:
            if not isinstance(trigger.cron, str) or not croniter.is_valid(trigger.cron):
                raise ValueError(f"{where}.cron: {trigger.cron!r} is not a valid cron expression")
            if not isinstance(trigger.input, Mapping):
                raise ValueError(f"{where}.input: expected a mapping")
        return trigger


@dataclass(frozen=True)
class ValidationRules:
    input_schema: Mapping[str, Any] | None = None

    def check(self, data: Mapping[str, Any]) -> None:
        if not self.input_schema:
            return
        validator = jsonschema.Draft202012Validator(self.input_schema)
        problems = []
        for err in sorted(validator.iter_errors(data), key=lambda e: list(e.absolute_path)):
            path = "/".join(str(p) for p in err.absolute_path) or "(root)"
            problems.append(f"{path}: {err.message}")
        if problems:
            raise InputValidationError(problems)


@dataclass(frozen=True)
class StepDefinition:
    id: str
    action: ActionRef
    compensation: CompensationAction | None
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    timeout: float = DEFAULT_STEP_TIMEOUT
    depends_on: tuple[str, ...] | None = None
    """None: the previous step in declared order. An explicit tuple (maybe empty) replaces that."""
    idempotent: bool = True
    """A non-idempotent step interrupted mid-flight is never re-run; the saga compensates instead."""
    idempotency_key: str | None = None
    """Template of the key sent to the service, e.g. ``{order_id}:reserve``; default workflow:step."""
    description: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "action": self.action.to_dict(),
            "compensation": self.compensation.to_dict() if self.compensation else None,
            "retry": self.retry.to_dict(),
            "timeout": self.timeout,
            "depends_on": list(self.depends_on) if self.depends_on is not None else None,
            "idempotent": self.idempotent,
            "idempotency_key": self.idempotency_key,
            "description": self.description,
        }


@dataclass(frozen=True)
class WorkflowDefinition:
    name: str
    steps: tuple[StepDefinition, ...]
    version: int | None = None
    description: str = ""
    trigger: WorkflowTrigger = field(default_factory=WorkflowTrigger)
    validation_rules: ValidationRules = field(default_factory=ValidationRules)
    defaults: Mapping[str, Any] = field(default_factory=dict)
    """Default values that fill what a start's input omits."""
    timeout: float = DEFAULT_WORKFLOW_TIMEOUT
    consistency: ConsistencyLevel = ConsistencyLevel.AT_LEAST_ONCE
    resources: tuple[str, ...] = ()
    """STRICT: templates of resources to lock for the whole saga, e.g. ``sku:{sku}``."""
    active: bool = True

    @property
    def definition_id(self) -> str:
        return f"{self.name}:{self.version}"

    def step(self, step_id: str) -> StepDefinition:
        for s in self.steps:
            if s.id == step_id:
                return s
        raise KeyError(step_id)

    def dependencies(self) -> dict[str, tuple[str, ...]]:
        """Resolved dependencies of every step (implicit order made explicit)."""
        deps: dict[str, tuple[str, ...]] = {}
        previous: str | None = None
        for s in self.steps:
            if s.depends_on is None:
                deps[s.id] = (previous,) if previous else ()
            else:
                deps[s.id] = tuple(s.depends_on)
            previous = s.id
        return deps

    def prepare_input(self, data: Mapping[str, Any] | None) -> dict[str, Any]:
        """Input with defaults filled in, checked against the validation rules."""
        if data is not None and not isinstance(data, Mapping):
            raise InputValidationError([f"(root): input must be a JSON object, got {type(data).__name__}"])
        # A JSON round trip copies (the caller's objects are never shared) and refuses what the
        # event log could not store.
        try:
            merged = orjson.loads(orjson.dumps(self.defaults))
            merged.update(orjson.loads(orjson.dumps(data or {})))
        except TypeError as exc:
            raise InputValidationError([f"(root): input is not JSON: {exc}"])
        self.validation_rules.check(merged)
        return merged

    def render_resources(self, variables: Mapping[str, Any]) -> list[str]:
        out = []
        for template in self.resources:
            try:
                out.append(template.format_map(_StrictVars(variables)))
            except KeyError as exc:
                raise InputValidationError([f"resource {template!r} needs input field {exc.args[0]!r}"])
        return sorted(set(out))

    def validate(self) -> None:
        problems = validate_structure(self)
        if problems:
            raise DefinitionError(problems, self.name)

    def with_version(self, version: int) -> WorkflowDefinition:
        return replace(self, version=version)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "version": self.version,
            "description": self.description,
            "trigger": self.trigger.to_dict(),
            "validation_rules": {"input_schema": self.validation_rules.input_schema},
            "defaults": dict(self.defaults),
            "timeout": self.timeout,
            "consistency": self.consistency.value,
            "resources": list(self.resources),
            "active": self.active,
            "steps": [s.to_dict() for s in self.steps],
        }

    def content_dict(self) -> dict[str, Any]:
        """What identifies a version's content (no version number, no active flag)."""
        data = self.to_dict()
        data.pop("version")
        data.pop("active")
        return data

    @classmethod
    def from_dict(cls, data: Any) -> WorkflowDefinition:
        return parse_definition(data)


class _StrictVars(dict):
    def __init__(self, variables: Mapping[str, Any]):
        super().__init__(variables)

    def __missing__(self, key: str) -> Any:
        raise KeyError(key)


_WORKFLOW_FIELDS = {
    "name",
    "version",
    "description",
    "trigger",
    "validation_rules",
    "input_schema",
    "defaults",
    "timeout",
    "consistency",
    "resources",
    "steps",
    "step_defaults",
    "active",
}
_STEP_FIELDS = {
    "id",
    "name",
    "action",
    "handler",
    "compensation",
    "retry",
    "timeout",
    "depends_on",
    "idempotent",
    "idempotency_key",
    "description",
}


def parse_definition(data: Any) -> WorkflowDefinition:
    """Build a definition from its dict form, collecting every problem before raising."""
    if not isinstance(data, Mapping):
        raise DefinitionError([f"a definition must be a mapping, got {type(data).__name__}"])
    name = data.get("name")
    problems: list[str] = []
    unknown = set(data) - _WORKFLOW_FIELDS
    if unknown:
        problems.append(f"unknown field(s) {sorted(unknown)}")

    def attempt(fn, *args, default=None):
        try:
            return fn(*args)
        except ValueError as exc:
            problems.append(str(exc))
            return default

    version = data.get("version")
    if version is not None and (not isinstance(version, int) or isinstance(version, bool) or version < 1):
        problems.append(f"version: expected a positive integer, got {version!r}")
        version = None
    try:
        consistency = ConsistencyLevel(str(data.get("consistency", "AT_LEAST_ONCE")).upper())
    except ValueError:
        problems.append(
            f"consistency: {data.get('consistency')!r} is not one of EVENTUAL, AT_LEAST_ONCE, EXACTLY_ONCE, STRICT"
        )
        consistency = ConsistencyLevel.AT_LEAST_ONCE
    timeout = attempt(
        lambda v: parse_duration(v, "timeout", allow_zero=False), data.get("timeout", DEFAULT_WORKFLOW_TIMEOUT)
    )
    trigger = attempt(WorkflowTrigger.parse, data.get("trigger"), default=WorkflowTrigger())
    rules = data.get("validation_rules") or {}
    schema = data.get("input_schema", rules.get("input_schema") if isinstance(rules, Mapping) else None)
    defaults = data.get("defaults") or {}
    if not isinstance(defaults, Mapping):
        problems.append("defaults: expected a mapping of input field -> default value")
        defaults = {}
    resources = data.get("resources") or []
    if not isinstance(resources, list | tuple) or not all(isinstance(r, str) for r in resources):
        problems.append("resources: expected a list of strings like 'sku:{sku}'")
        resources = []

    step_defaults = data.get("step_defaults") or {}
    if not isinstance(step_defaults, Mapping):
        problems.append("step_defaults: expected a mapping")
        step_defaults = {}
    default_retry = attempt(RetryPolicy.from_dict, step_defaults.get("retry"), "step_defaults.retry")
    default_timeout = attempt(
        lambda v: parse_duration(v, "step_defaults.timeout", allow_zero=False),
        step_defaults.get("timeout", DEFAULT_STEP_TIMEOUT),
    )

    raw_steps = data.get("steps")
    steps: list[StepDefinition] = []
    positions: list[int] = []
    if not isinstance(raw_steps, list) or not raw_steps:
        problems.append("steps: a definition needs a non-empty list of steps")
        raw_steps = []
    for i, raw in enumerate(raw_steps):
        step = _parse_step(raw, i, problems, default_retry or RetryPolicy(), default_timeout or DEFAULT_STEP_TIMEOUT)
        if step is not None:
            steps.append(step)
            positions.append(i)

    definition = WorkflowDefinition(
        name=name if isinstance(name, str) else "",
        version=version,
        description=str(data.get("description", "")),
        trigger=trigger or WorkflowTrigger(),
        validation_rules=ValidationRules(input_schema=schema),
        defaults=dict(defaults),
        timeout=timeout or DEFAULT_WORKFLOW_TIMEOUT,
        consistency=consistency,
        resources=tuple(resources),
        steps=tuple(steps),
        active=bool(data.get("active", True)),
    )
    problems.extend(validate_structure(definition, steps_parsed=len(steps) == len(raw_steps), positions=positions))
    if problems:
        raise DefinitionError(_dedupe(problems), name if isinstance(name, str) else None)
    return definition


def _parse_step(
    raw: Any, index: int, problems: list[str], default_retry: RetryPolicy, default_timeout: float
) -> StepDefinition | None:
    if not isinstance(raw, Mapping):
        problems.append(f"steps[{index}]: expected a mapping, got {type(raw).__name__}")
        return None
    step_id = raw.get("id", raw.get("name"))
    where = f"steps[{index}]" + (f" ({step_id})" if isinstance(step_id, str) else "")
    unknown = set(raw) - _STEP_FIELDS
    if unknown:
        problems.append(f"{where}: unknown field(s) {sorted(unknown)}")
    ok = True
    if not isinstance(step_id, str):
        problems.append(f"{where}: a step needs an 'id'")
        ok = False
    action_raw = raw.get("action", raw.get("handler"))
    action = None
    if action_raw is None:
        problems.append(f"{where}: a step needs an 'action' (handler 'module:function')")
        ok = False
    else:
        try:
            action = ActionRef.parse(action_raw, f"{where}.action")
        except ValueError as exc:
            problems.append(str(exc))
            ok = False
    compensation = None
    if raw.get("compensation") is None:
        problems.append(f"{where}: missing compensation (every step must declare one)")
        ok = False
    else:
        try:
            compensation = CompensationAction.parse(raw["compensation"], f"{where}.compensation")
        except ValueError as exc:
            problems.append(str(exc))
            ok = False
    try:
        retry = RetryPolicy.from_dict(raw.get("retry"), f"{where}.retry", base=default_retry)
    except ValueError as exc:
        problems.append(str(exc))
        retry, ok = default_retry, False
    try:
        timeout = parse_duration(raw.get("timeout", default_timeout), f"{where}.timeout", allow_zero=False)
    except ValueError as exc:
        problems.append(str(exc))
        timeout, ok = default_timeout, False
    depends_on = raw.get("depends_on")
    if depends_on is not None:
        if isinstance(depends_on, str):
            depends_on = [depends_on]
        if not isinstance(depends_on, list | tuple) or not all(isinstance(d, str) for d in depends_on):
            problems.append(f"{where}.depends_on: expected a list of step ids")
            depends_on, ok = None, False
        else:
            depends_on = tuple(depends_on)
    idem_key = raw.get("idempotency_key")
    if idem_key is not None and not isinstance(idem_key, str):
        problems.append(f"{where}.idempotency_key: expected a template string")
        ok = False
    if not ok:
        return None
    return StepDefinition(
        id=step_id,
        action=action,
        compensation=compensation,
        retry=retry,
        timeout=timeout,
        depends_on=depends_on,
        idempotent=bool(raw.get("idempotent", True)),
        idempotency_key=idem_key,
        description=str(raw.get("description", "")),
    )


def _dedupe(items: list[str]) -> list[str]:
    return list(dict.fromkeys(items))
