"""Definition parsing and validation (``engine.domain.definition.parse_definition``)."""

from __future__ import annotations

import json

import pytest

from engine.domain.definition import StepDefinition, WorkflowDefinition, parse_definition
from engine.domain.definition_rules import find_cycle
from engine.domain.policies import DEFAULT_STEP_TIMEOUT, DEFAULT_WORKFLOW_TIMEOUT, ActionRef, parse_duration
from engine.domain.status import BackoffStrategy, CompensationType, ConsistencyLevel, TriggerKind
from engine.errors import DefinitionError
from tests.unit.factories import definition_dict, step_dict


def problems_of(data: dict) -> list[str]:
    with pytest.raises(DefinitionError) as info:
        parse_definition(data)
    return info.value.problems


def one_step(**step_fields) -> dict:
    return definition_dict(steps=[step_dict("a", **step_fields)])


# ---------------------------------------------------------------------------------------------- valid
def test_valid_definition_parses_with_seed_defaults() -> None:
    d = parse_definition(definition_dict())
    assert d.name == "order-fulfillment"
    assert d.version == 1
    assert [s.id for s in d.steps] == ["reserve", "pick", "ship"]
    assert d.timeout == DEFAULT_WORKFLOW_TIMEOUT == 1800.0
    assert d.consistency is ConsistencyLevel.AT_LEAST_ONCE
    assert d.trigger.kind is TriggerKind.MANUAL
    step = d.step("reserve")
    assert step.timeout == DEFAULT_STEP_TIMEOUT == 30.0
    assert (step.retry.max_attempts, step.retry.backoff) == (3, BackoffStrategy.EXPONENTIAL)
    assert step.compensation.type is CompensationType.UNDO
    assert step.compensation.action.handler == "examples.warehouse:undo_reserve"


def test_implicit_dependencies_follow_declared_order() -> None:
    d = parse_definition(definition_dict())
    assert d.dependencies() == {"reserve": (), "pick": ("reserve",), "ship": ("pick",)}


def test_explicit_depends_on_and_empty_list_are_respected() -> None:
    d = parse_definition(
        definition_dict(
            steps=[
                step_dict("reserve"),
                step_dict("notify", depends_on=[]),
                step_dict("pick", depends_on=["reserve"]),
                step_dict("pack", depends_on="reserve"),
                step_dict("ship", depends_on=["pick", "pack"]),
                step_dict("invoice"),
            ]
        )
    )
    assert d.dependencies() == {
        "reserve": (),
        "notify": (),
        "pick": ("reserve",),
        "pack": ("reserve",),
        "ship": ("pick", "pack"),
        "invoice": ("ship",),
    }


def test_step_defaults_apply_to_steps_that_do_not_override_them() -> None:
    d = parse_definition(
        definition_dict(
            step_defaults={"timeout": "10s", "retry": {"max_attempts": 5, "backoff": "linear"}},
            steps=[step_dict("a"), step_dict("b", timeout="2m", retry={"max_attempts": 1})],
        )
    )
    a, b = d.steps
    assert (a.timeout, a.retry.max_attempts, a.retry.backoff) == (10.0, 5, BackoffStrategy.LINEAR)
    assert (b.timeout, b.retry.max_attempts, b.retry.backoff) == (120.0, 1, BackoffStrategy.LINEAR)


def test_string_shorthands_and_units() -> None:
    d = parse_definition(
        definition_dict(
            timeout="5m",
            consistency="strict",
            resources=["sku:{sku}"],
            steps=[
                {
                    "name": "a",
                    "handler": "examples.warehouse:a",
                    "compensation": {"type": "alternative", "alternative": "examples.warehouse:alt_a"},
                    "retry": {"initial_delay": "250ms", "max_delay": "1h", "jitter": 0.5},
                }
            ],
        )
    )
    step = d.steps[0]
    assert d.timeout == 300.0
    assert d.consistency is ConsistencyLevel.STRICT
    assert step.id == "a"
    assert step.action.handler == "examples.warehouse:a"
    assert step.compensation.type is CompensationType.ALTERNATIVE
    assert (step.retry.initial_delay, step.retry.max_delay, step.retry.jitter) == (0.25, 3600.0, 0.5)


def test_stored_form_parses_back_to_the_same_definition() -> None:
    original = parse_definition(
        definition_dict(
            description="ship an order",
            trigger={"type": "schedule", "cron": "*/5 * * * *", "input": {"batch": 10}},
            input_schema={"type": "object", "properties": {"qty": {"type": "integer"}}},
            defaults={"qty": 1},
            consistency="EXACTLY_ONCE",
            resources=["sku:{sku}"],
            steps=[
                step_dict("reserve", retry={"backoff": "FIBONACCI", "initial_delay": 2, "jitter": 0.1}),
                step_dict("pick", compensation={"type": "MANUAL", "note": "call the floor"}, depends_on=[]),
                step_dict(
                    "ship",
                    compensation={"type": "RETRY", "action": "examples.warehouse:recall", "max_retries": 5},
                    idempotent=False,
                    idempotency_key="{order_id}:ship",
                    retry={"non_retryable_errors": ["ValueError"], "retryable_errors": ["ConnectionError"]},
                ),
            ],
        )
    )
    stored = json.loads(json.dumps(original.to_dict()))
    assert parse_definition(stored) == original


# ---------------------------------------------------------------------------------------------- errors
def test_missing_compensation_names_the_step() -> None:
    problems = problems_of(definition_dict(steps=[step_dict("reserve"), {"id": "pick", "action": "m:pick"}]))
    assert "steps[1] (pick): missing compensation (every step must declare one)" in problems


@pytest.mark.parametrize(
    ("steps", "cycle"),
    [
        ([step_dict("a", depends_on=["b"]), step_dict("b", depends_on=["a"])], "a -> b -> a"),
        ([step_dict("a", depends_on=["b"]), step_dict("b")], "a -> b -> a"),  # b implicitly after a
        (
            [step_dict("a", depends_on=["c"]), step_dict("b", depends_on=["a"]), step_dict("c", depends_on=["b"])],
            "a -> c -> b -> a",
        ),
        ([step_dict("a", depends_on=["a"])], "a -> a"),
        (
            [step_dict("x", depends_on=["a"]), step_dict("a", depends_on=["b"]), step_dict("b", depends_on=["a"])],
            "a -> b -> a",
        ),
    ],
    ids=["two", "implicit", "three", "self", "behind-a-tail"],
)
def test_cycle_in_depends_on_shows_the_cycle_path(steps, cycle) -> None:
    assert f"cycle in depends_on: {cycle}" in problems_of(definition_dict(steps=steps))


def test_depends_on_unknown_step() -> None:
    problems = problems_of(definition_dict(steps=[step_dict("a"), step_dict("b", depends_on=["zzz"])]))
    assert "step 'b': depends_on unknown step 'zzz'" in problems


def test_duplicate_step_id() -> None:
    problems = problems_of(definition_dict(steps=[step_dict("a"), step_dict("b"), step_dict("a", depends_on=[])]))
    assert "steps[2] (a): duplicate step id 'a'" in problems


BAD_DURATIONS = ["abc", -1, "5 weeks"]


@pytest.mark.parametrize("value", BAD_DURATIONS)
@pytest.mark.parametrize(
    ("where", "make"),
    [
        ("steps[0] (a).timeout", lambda v: one_step(timeout=v)),
        ("timeout", lambda v: definition_dict(timeout=v)),
        ("steps[0] (a).retry.initial_delay", lambda v: one_step(retry={"initial_delay": v})),
        ("steps[0] (a).retry.max_delay", lambda v: one_step(retry={"max_delay": v})),
        ("steps[0] (a).retry.increment", lambda v: one_step(retry={"increment": v})),
        (
            "steps[0] (a).compensation.retry_delay",
            lambda v: one_step(compensation={"action": "m:undo", "retry_delay": v}),
        ),
        ("step_defaults.timeout", lambda v: definition_dict(step_defaults={"timeout": v})),
    ],
    ids=["step-timeout", "workflow-timeout", "initial-delay", "max-delay", "increment", "comp-retry-delay", "defaults"],
)
def test_bad_duration_is_reported_where_it_is(where, make, value) -> None:
    problems = problems_of(make(value))
    expected = (
        f"{where}: duration must be >= 0, got {value!r}"
        if isinstance(value, int)
        else f"{where}: bad duration {value!r} (use seconds like 30, or 250ms, 30s, 5m, 1h)"
    )
    # Timeouts must be positive, so their message says "> 0"; delays may be zero.
    if where in ("steps[0] (a).timeout", "timeout", "step_defaults.timeout") and isinstance(value, int):
        expected = f"{where}: duration must be > 0, got {value!r}"
    assert expected in problems


def test_zero_step_timeout_is_rejected() -> None:
    assert "steps[0] (a).timeout: duration must be > 0, got 0" in problems_of(one_step(timeout=0))


@pytest.mark.parametrize(
    ("retry", "message"),
    [
        (
            {"backoff": "QUADRATIC"},
            "steps[0] (a).retry.backoff: 'QUADRATIC' is not one of LINEAR, EXPONENTIAL, FIBONACCI, CUSTOM",
        ),
        ({"max_attempts": 0}, "steps[0] (a).retry.max_attempts must be >= 1, got 0"),
        ({"max_attempts": "3"}, "steps[0] (a).retry.max_attempts: expected an integer, got '3'"),
        ({"jitter": 2}, "steps[0] (a).retry.jitter must be between 0 and 1, got 2.0"),
        ({"backoff": "CUSTOM"}, "steps[0] (a).retry: backoff CUSTOM needs 'custom: module:function'"),
        (
            {"initial_delay": 120},
            "steps[0] (a).retry.max_delay (60.0s) is below initial_delay (120.0s)",
        ),
        ({"retries": 3}, "steps[0] (a).retry: unknown field(s) ['retries']"),
    ],
    ids=[
        "unknown-backoff",
        "max-attempts-0",
        "max-attempts-str",
        "jitter-2",
        "custom-without-fn",
        "max<initial",
        "unknown",
    ],
)
def test_bad_retry_policy(retry, message) -> None:
    assert message in problems_of(one_step(retry=retry))


@pytest.mark.parametrize(
    ("compensation", "message"),
    [
        ({"type": "UNDO"}, "steps[0] (a).compensation: compensation type UNDO needs an 'action' (undo handler)"),
        ({"type": "RETRY"}, "steps[0] (a).compensation: compensation type RETRY needs an 'action' (undo handler)"),
        (
            {"type": "ALTERNATIVE", "action": "m:undo"},
            "steps[0] (a).compensation: compensation type ALTERNATIVE needs an 'alternative' handler",
        ),
        (
            {"type": "REVERT", "action": "m:undo"},
            "steps[0] (a).compensation.type: 'REVERT' is not one of UNDO, RETRY, ALTERNATIVE, MANUAL",
        ),
        (
            "not a handler",
            "steps[0] (a).compensation.action.handler: 'not a handler' is not of the form 'module:function'",
        ),
    ],
    ids=["undo-no-action", "retry-no-action", "alternative-no-alternative", "unknown-type", "bad-handler"],
)
def test_bad_compensation(compensation, message) -> None:
    assert message in problems_of(one_step(compensation=compensation))


def test_manual_compensation_needs_no_handler() -> None:
    d = parse_definition(one_step(compensation={"type": "MANUAL", "note": "call the floor"}))
    assert d.steps[0].compensation.type is CompensationType.MANUAL


@pytest.mark.parametrize("name", ["Bad Name", "", "-leading-dash", "x" * 81, "order/fulfillment"])
def test_bad_name(name) -> None:
    assert f"name: {name!r} must be 1-80 lowercase letters, digits, '.', '_' or '-'" in problems_of(
        definition_dict(name=name)
    )


def test_missing_name() -> None:
    data = definition_dict()
    del data["name"]
    assert "name: '' must be 1-80 lowercase letters, digits, '.', '_' or '-'" in problems_of(data)


def test_bad_step_id() -> None:
    assert "steps[0] (no spaces): id must be letters, digits, '_' or '-' (max 64)" in problems_of(
        definition_dict(steps=[step_dict("no spaces", action="m:f", compensation="m:g")])
    )


def test_unknown_fields_at_both_levels() -> None:
    problems = problems_of(definition_dict(colour="blue", steps=[step_dict("a", colour="red")]))
    assert "unknown field(s) ['colour']" in problems
    assert "steps[0] (a): unknown field(s) ['colour']" in problems


@pytest.mark.parametrize("schema", [{"type": "nope"}, {"type": "object", "properties": {"qty": {"minimum": "x"}}}])
def test_invalid_json_schema(schema) -> None:
    problems = problems_of(definition_dict(input_schema=schema))
    assert any(p.startswith("validation_rules.input_schema: invalid JSON Schema: ") for p in problems), problems


def test_input_schema_must_be_an_object() -> None:
    assert "validation_rules.input_schema: expected a JSON Schema object" in problems_of(
        definition_dict(validation_rules={"input_schema": ["type", "object"]})
    )


def test_event_trigger_without_stream() -> None:
    assert "trigger: an event trigger needs 'stream: <redis stream name>'" in problems_of(
        definition_dict(trigger={"type": "event"})
    )


@pytest.mark.parametrize("cron", ["not a cron", "61 * * * *", None])
def test_schedule_trigger_with_invalid_cron(cron) -> None:
    assert f"trigger.cron: {cron!r} is not a valid cron expression" in problems_of(
        definition_dict(trigger={"type": "schedule", "cron": cron})
    )


def test_valid_triggers() -> None:
    event = parse_definition(definition_dict(trigger={"type": "event", "stream": "orders"})).trigger
    schedule = parse_definition(definition_dict(trigger={"type": "schedule", "cron": "0 * * * *"})).trigger
    assert (event.kind, event.stream) == (TriggerKind.EVENT, "orders")
    assert (schedule.kind, schedule.cron) == (TriggerKind.SCHEDULE, "0 * * * *")


def test_unknown_trigger_type() -> None:
    assert "trigger.type: 'webhook' is not one of manual, event, schedule" in problems_of(
        definition_dict(trigger={"type": "webhook"})
    )


@pytest.mark.parametrize("steps", [None, [], "a,b"])
def test_steps_must_be_a_non_empty_list(steps) -> None:
    assert "steps: a definition needs a non-empty list of steps" in problems_of(definition_dict(steps=steps))


def test_bad_version_and_consistency() -> None:
    problems = problems_of(definition_dict(version=0, consistency="SOMETIMES"))
    assert "version: expected a positive integer, got 0" in problems
    assert "consistency: 'SOMETIMES' is not one of EVENTUAL, AT_LEAST_ONCE, EXACTLY_ONCE, STRICT" in problems


def test_several_problems_are_reported_together() -> None:
    data = definition_dict(
        name="Bad Name",
        colour="blue",
        trigger={"type": "event"},
        steps=[
            step_dict("b", retry={"jitter": 2}),
            {"id": "a", "action": "m:a"},
            step_dict("c", timeout="abc"),
        ],
    )
    with pytest.raises(DefinitionError) as info:
        parse_definition(data)
    problems = info.value.problems
    expected = [
        "name: 'Bad Name' must be 1-80 lowercase letters, digits, '.', '_' or '-'",
        "unknown field(s) ['colour']",
        "trigger: an event trigger needs 'stream: <redis stream name>'",
        "steps[0] (b).retry.jitter must be between 0 and 1, got 2.0",
        "steps[1] (a): missing compensation (every step must declare one)",
        "steps[2] (c).timeout: bad duration 'abc' (use seconds like 30, or 250ms, 30s, 5m, 1h)",
    ]
    assert set(expected) <= set(problems)
    for p in expected:
        assert p in str(info.value)
    assert len(problems) == len(set(problems))  # deduplicated


def test_definition_error_names_the_definition() -> None:
    with pytest.raises(DefinitionError) as info:
        parse_definition(one_step(retry={"max_attempts": 0}))
    assert info.value.name == "order-fulfillment"
    assert str(info.value).startswith("definition 'order-fulfillment': ")


def test_non_mapping_definition() -> None:
    assert problems_of(["not", "a", "mapping"]) == ["a definition must be a mapping, got list"]  # type: ignore[arg-type]


def test_validate_on_a_built_definition_catches_missing_compensation() -> None:
    broken = WorkflowDefinition(
        name="order-fulfillment", steps=(StepDefinition(id="x", action=ActionRef(handler="m:x"), compensation=None),)
    )
    with pytest.raises(DefinitionError, match=r"steps\[0\] \(x\): missing compensation"):
        broken.validate()


# ---------------------------------------------------------------------------------------------- find_cycle
def test_find_cycle_none_on_a_dag() -> None:
    assert find_cycle({"a": (), "b": ("a",), "c": ("a",), "d": ("b", "c")}) is None


def test_find_cycle_path_excludes_the_nodes_leading_into_it() -> None:
    assert find_cycle({"x": ("a",), "a": ("b",), "b": ("a",)}) == ["a", "b", "a"]


def test_find_cycle_returns_a_closed_path() -> None:
    cycle = find_cycle({"x": (), "a": ("b",), "b": ("c",), "c": ("a",)})
    assert cycle is not None
    assert cycle[0] == cycle[-1]
    assert set(cycle) == {"a", "b", "c"}


# ---------------------------------------------------------------------------------------------- durations
@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        (30, 30.0),
        (1.5, 1.5),
        (0, 0.0),
        ("250ms", 0.25),
        ("30s", 30.0),
        ("5m", 300.0),
        ("1h", 3600.0),
        ("45", 45.0),
        (" 2 s ", 2.0),
        ("1.5h", 5400.0),
    ],
)
def test_parse_duration_accepts(value, seconds) -> None:
    assert parse_duration(value, "t") == pytest.approx(seconds)


@pytest.mark.parametrize("value", ["abc", -1, "-1", "5 weeks", "1d", True, None, float("inf"), float("nan"), [], "1e3"])
def test_parse_duration_rejects(value) -> None:
    with pytest.raises(ValueError, match=r"^where: "):
        parse_duration(value, "where")


def test_parse_duration_refuses_zero_when_asked() -> None:
    with pytest.raises(ValueError, match="must be > 0"):
        parse_duration(0, "t", allow_zero=False)


# ---------------------------------------------------------------------------------------------- bugs
@pytest.mark.parametrize("field", ["name", "step id"])
def test_trailing_newline_is_not_a_valid_identifier(field) -> None:
    data = definition_dict(name="order-fulfillment\n") if field == "name" else one_step(id="a\n")
    with pytest.raises(DefinitionError):
        parse_definition(data)


def test_zero_step_defaults_timeout_is_rejected() -> None:
    with pytest.raises(DefinitionError, match=r"step_defaults\.timeout"):
        parse_definition(definition_dict(step_defaults={"timeout": 0}))


def test_default_contradicting_the_input_schema_is_rejected() -> None:
    schema = {"type": "object", "properties": {"qty": {"type": "integer"}}}
    with pytest.raises(DefinitionError, match="qty"):
        parse_definition(definition_dict(input_schema=schema, defaults={"qty": "three"}))


@pytest.mark.parametrize("value", ["abc", -1])
def test_bad_workflow_timeout_is_reported_once(value) -> None:
    problems = problems_of(definition_dict(timeout=value))
    assert len([p for p in problems if p.startswith("timeout")]) == 1, problems


def test_problem_index_is_the_declared_position_after_an_unparsable_step() -> None:
    problems = problems_of(definition_dict(steps=[{"id": "a", "action": "m:a"}, step_dict("b", retry={"jitter": 2})]))
    assert "steps[1] (b).retry.jitter must be between 0 and 1, got 2.0" in problems
