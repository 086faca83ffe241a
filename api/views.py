"""Engine objects to the API's response shapes (``api.schemas``)."""

from __future__ import annotations

from typing import Any

from engine import WorkflowDefinition

EVENT_HEAD = ("id", "version", "type", "at", "workflow_id")


def workflow_detail(inst: Any) -> dict[str, Any]:
    """A ``WorkflowInstance`` (from ``EngineClient.instance``) as ``WorkflowDetail``."""
    snap = inst.to_dict()
    times = dict(snap["time_constraints"])
    times["updated_at"] = snap["updated_at"]
    return {
        "workflow_id": snap["workflow_id"],
        "workflow_type": snap["workflow_type"],
        "definition_version": snap["definition_version"],
        "status": snap["status"],
        "consistency": snap["consistency"],
        "correlation_id": snap["correlation_id"],
        "input": snap["input"],
        "resources": snap["resources"],
        "steps": [_step(s) for s in snap["steps"]],
        "compensation_stack": snap["compensation_stack"],
        "context": snap["context"],
        "times": times,
        "saga": inst.saga_state.to_dict(),
        "total_retries": snap["retry_state"]["total_retries"],
        "compensation_retries": snap["retry_state"]["compensation_retries"],
        "duration": snap["metrics"]["duration"],
        "reason": snap["reason"],
        "compensation_reason": snap["compensation_reason"],
        "requires_attention": snap["requires_attention"],
        "failed_compensations": snap["failed_compensations"],
        "compensation_timed_out": snap["compensation_timed_out"],
        "waiting_for_lock": snap["waiting_for_lock"],
        "result": snap["result"],
        "version": snap["version"],
    }


def _step(s: dict[str, Any]) -> dict[str, Any]:
    return {
        "step_id": s["step_id"],
        "step_type": s["step_type"],
        "target": s["target"],
        "depends_on": s["depends_on"],
        "status": s["status"],
        "attempt": s["attempt"],
        "idempotent": s["idempotent"],
        "idempotency_key": s["idempotency_key"],
        "input": s["input"],
        "output": s["output"],
        "error": s["error"],
        "started_at": s["started_at"],
        "ended_at": s["ended_at"],
        "execution_time": s["execution_time"],
        "next_attempt_at": s["next_attempt_at"],
        "uncertain": s["uncertain"],
        "completed_seq": s["completed_seq"],
        "stack_seq": s["stack_seq"],
        "compensation": {
            "type": s["compensation_type"],
            "attempt": s["comp_attempt"],
            "via": s["comp_via"],
            "error": s["comp_error"],
            "started_at": s["comp_started_at"],
            "ended_at": s["comp_ended_at"],
            "next_attempt_at": s["comp_next_attempt_at"],
            "running": s["comp_running"],
            "operator_retry": s["comp_operator_retry"],
        },
    }


def workflow_event(e: dict[str, Any]) -> dict[str, Any]:
    """``EngineClient.events`` item -> ``WorkflowEvent`` (the event's own fields under ``data``)."""
    return {
        "id": e["id"],
        "version": e["version"],
        "type": e["type"],
        "at": e["at"],
        "data": {k: v for k, v in e.items() if k not in EVENT_HEAD},
    }


def definition_summary(d: WorkflowDefinition) -> dict[str, Any]:
    return {
        "name": d.name,
        "version": d.version,
        "active": d.active,
        "description": d.description,
        "consistency": d.consistency,
        "timeout": d.timeout,
        "trigger": d.trigger.to_dict(),
        "steps": len(d.steps),
    }
