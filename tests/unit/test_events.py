"""Domain events: every class round-trips through its dict (and JSON) form."""

from __future__ import annotations

import dataclasses
import json

import pytest

from engine.domain import events as ev
from engine.domain.events import event_from_dict, event_types
from engine.domain.instance import WorkflowInstance
from tests.unit.factories import sample_events

SAMPLES = sample_events()


def test_there_is_a_sample_of_every_event_class() -> None:
    assert sorted(SAMPLES) == event_types()


def test_the_seeds_six_events_exist() -> None:
    seed = {
        "WorkflowStarted",
        "StepExecuted",
        "StepFailed",
        "CompensationStarted",
        "WorkflowCompleted",
        "WorkflowTimeout",
    }
    assert seed <= set(event_types())


@pytest.mark.parametrize("event_type", event_types())
def test_every_event_class_is_understood_by_the_aggregate(event_type) -> None:
    try:
        WorkflowInstance().apply(SAMPLES[event_type])
    except ValueError as exc:
        assert "no handler" not in str(exc)
    except Exception:
        pass  # refused on an empty instance: fine, the point is that a handler exists


@pytest.mark.parametrize("event_type", event_types())
def test_event_round_trips_through_its_dict(event_type) -> None:
    e = SAMPLES[event_type]
    assert event_from_dict(e.to_dict()) == e


@pytest.mark.parametrize("event_type", event_types())
def test_event_round_trips_through_json(event_type) -> None:
    e = SAMPLES[event_type]
    assert event_from_dict(json.loads(json.dumps(e.to_dict()))) == e


@pytest.mark.parametrize("event_type", event_types())
def test_dict_form_names_its_type_and_every_field(event_type) -> None:
    e = SAMPLES[event_type]
    data = e.to_dict()
    assert data["type"] == event_type == type(e).TYPE
    assert set(data) == {"type"} | {f.name for f in dataclasses.fields(e)}


def test_unknown_fields_are_ignored_when_reading() -> None:
    e = SAMPLES["WorkflowPaused"]
    assert event_from_dict({**e.to_dict(), "added_in_a_later_version": 1}) == e


def test_unknown_event_type_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown event type 'Nope'"):
        event_from_dict({"type": "Nope", "workflow_id": "w", "at": 0.0})


def test_events_are_immutable() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        SAMPLES["WorkflowPaused"].by = "mallory"  # type: ignore[misc]


def test_defaults_of_optional_fields() -> None:
    e = ev.StepFailed("w", 0.0, "a", 1, "boom", "StepError", False)
    assert (e.next_attempt_at, e.uncertain, e.execution_time) == (None, False, 0.0)
    assert ev.WorkflowCancelled("w", 0.0).reason == "cancelled"
