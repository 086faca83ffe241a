"""Input of a start: defaults, JSON Schema rules, resource templates (``WorkflowDefinition``)."""

from __future__ import annotations

import pytest

from engine.domain.definition import parse_definition
from engine.errors import DefinitionError, InputValidationError
from tests.unit.factories import definition_dict

SCHEMA = {
    "type": "object",
    "required": ["order_id", "lines"],
    "properties": {
        "order_id": {"type": "string"},
        "priority": {"type": "integer", "minimum": 0},
        "lines": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["sku", "qty"],
                "properties": {"sku": {"type": "string"}, "qty": {"type": "integer", "minimum": 1}},
            },
        },
    },
}
LINES = [{"sku": "A1", "qty": 2}]


@pytest.fixture
def definition():
    return parse_definition(
        definition_dict(
            input_schema=SCHEMA,
            defaults={"priority": 5, "options": {"gift": False}},
            resources=["sku:{sku}", "zone:{zone}", "sku:{sku}"],
        )
    )


def test_defaults_fill_what_the_input_omits(definition) -> None:
    assert definition.prepare_input({"order_id": "o-1", "lines": LINES}) == {
        "order_id": "o-1",
        "lines": LINES,
        "priority": 5,
        "options": {"gift": False},
    }


def test_input_overrides_defaults(definition) -> None:
    data = definition.prepare_input({"order_id": "o-1", "lines": LINES, "priority": 1})
    assert data["priority"] == 1


def test_prepared_input_does_not_share_the_defaults(definition) -> None:
    data = definition.prepare_input({"order_id": "o-1", "lines": LINES})
    data["options"]["gift"] = True
    assert definition.defaults["options"] == {"gift": False}


@pytest.mark.parametrize(
    ("data", "problem_prefix"),
    [
        ({"order_id": "o-1", "lines": [{"sku": "A1", "qty": 0}]}, "lines/0/qty: "),
        ({"order_id": "o-1", "lines": LINES, "priority": -1}, "priority: "),
        ({"order_id": 7, "lines": LINES}, "order_id: "),
        ({"lines": LINES}, "(root): "),
        ({"order_id": "o-1", "lines": [{"sku": "A1"}]}, "lines/0: "),
    ],
    ids=["nested-minimum", "minimum", "type", "required", "nested-required"],
)
def test_schema_violation_names_the_json_path(definition, data, problem_prefix) -> None:
    with pytest.raises(InputValidationError) as info:
        definition.prepare_input(data)
    assert len(info.value.problems) == 1
    assert info.value.problems[0].startswith(problem_prefix), info.value.problems


def test_every_violation_is_reported(definition) -> None:
    with pytest.raises(InputValidationError) as info:
        definition.prepare_input({"order_id": 7, "lines": [{"sku": "A1", "qty": 0}], "priority": -1})
    assert [p.split(":")[0] for p in info.value.problems] == ["lines/0/qty", "order_id", "priority"]


def test_defaults_can_supply_required_fields() -> None:
    d = parse_definition(definition_dict(input_schema=SCHEMA, defaults={"order_id": "o-1", "lines": LINES}))
    assert d.prepare_input(None)["order_id"] == "o-1"


@pytest.mark.parametrize("data", [["a", "b"], "order", 42])
def test_non_object_input_is_rejected(definition, data) -> None:
    with pytest.raises(InputValidationError) as info:
        definition.prepare_input(data)
    assert info.value.problems == [f"(root): input must be a JSON object, got {type(data).__name__}"]


def test_no_schema_accepts_any_object() -> None:
    d = parse_definition(definition_dict())
    assert d.prepare_input({"anything": [1, 2]}) == {"anything": [1, 2]}
    assert d.prepare_input(None) == {}


def test_render_resources_formats_sorts_and_dedupes(definition) -> None:
    assert definition.render_resources({"sku": "A1", "zone": "Z9", "extra": 1}) == ["sku:A1", "zone:Z9"]


def test_render_resources_names_the_missing_field(definition) -> None:
    with pytest.raises(InputValidationError) as info:
        definition.render_resources({"sku": "A1"})
    assert info.value.problems == ["resource 'zone:{zone}' needs input field 'zone'"]


def test_resource_template_with_forbidden_characters_is_a_definition_error() -> None:
    with pytest.raises(DefinitionError, match=r"resources: 'sku \{sku\}' may only use"):
        parse_definition(definition_dict(resources=["sku {sku}"]))
