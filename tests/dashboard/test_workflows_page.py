"""The Workflows page: filters, cursor pages, bulk pause / resume / cancel with a confirmation, and
opening one workflow; against real sagas run by real workers."""

from __future__ import annotations

import uuid

import pytest

from tests.dashboard.conftest import control_keys, open_page, start, status_of, texts, wait_for

pytestmark = pytest.mark.timeout(90)
SLOW = {"reserve": {"sleep": 1.5}, "charge": {"sleep": 1.5}, "ship": {"sleep": 1.5}}


def shown_ids(at) -> list[str]:
    return list(at.dataframe[0].value["workflow_id"])


def test_filters_and_cursor_pages(app, stack, flow):
    corr = f"page-{uuid.uuid4().hex[:8]}"
    ids = [start(stack, flow, correlation_id=corr) for _ in range(12)]
    wait_for(lambda: all(status_of(stack, w) == "COMPLETED" for w in ids), what="12 completions")
    other = start(stack, flow)

    at = open_page(app("viewer"), "workflows")
    assert other in shown_ids(at)
    at.text_input(key="wf_corr").input(corr).run()
    at.selectbox(key="wf_limit").select(10).run()
    at.selectbox(key="wf_status").select("COMPLETED").run()
    at.selectbox(key="wf_definition").select(flow).run()
    assert not at.exception
    first = shown_ids(at)
    assert len(first) == 10 and set(first) <= set(ids)
    at.button(key="wf_next").click().run()
    second = shown_ids(at)
    assert len(second) == 2 and set(first) | set(second) == set(ids)
    assert "Page 2" in texts(at) and "wf_next" not in {b.key for b in at.button}  # the last page
    at.button(key="wf_prev").click().run()
    assert shown_ids(at) == first

    # the filters survive a trip to another page and back
    at.switch_page("app_pages/overview.py").run()
    at.switch_page("app_pages/workflows.py").run()
    assert at.text_input(key="wf_corr").value == corr and at.selectbox(key="wf_limit").value == 10
    assert shown_ids(at) == first

    at.selectbox(key="wf_status").select("RUNNING").run()
    assert shown_ids(at) == []
    assert not control_keys(at), "a viewer sees no control button"


def test_bulk_pause_resume_cancel_with_confirmation(app, stack, flow):
    corr = f"bulk-{uuid.uuid4().hex[:8]}"
    ids = [start(stack, flow, SLOW, correlation_id=corr) for _ in range(2)]
    at = open_page(app("operator"), "workflows")
    at.text_input(key="wf_corr").input(corr).run()
    assert set(shown_ids(at)) == set(ids)
    assert control_keys(at) == {"ctl_bulk_pause", "ctl_bulk_resume", "ctl_bulk_cancel"}
    wait_for(lambda: all(status_of(stack, w) == "RUNNING" for w in ids), what="both RUNNING")

    at.button(key="wf_select_page").click().run()
    assert sorted(at.multiselect(key="wf_selected").value) == sorted(ids)
    at.button(key="ctl_bulk_pause").click().run()
    assert all(status_of(stack, w) == "RUNNING" for w in ids), "nothing happens before the confirmation"
    assert any("Pause 2 workflow(s)?" in w.value for w in at.warning)
    at.text_input(key="wf_reason").input("stocktake").run()
    at.button(key="ctl_bulk_confirm").click().run()
    assert not at.exception
    assert [status_of(stack, w) for w in ids] == ["PAUSED", "PAUSED"]
    assert any("2 of 2 succeeded" in s.value for s in at.success)
    assert at.multiselect(key="wf_selected").value, "the selection is kept"

    at.button(key="ctl_bulk_resume").click().run()
    at.button(key="ctl_bulk_confirm").click().run()
    assert [status_of(stack, w) for w in ids] == ["RUNNING", "RUNNING"]

    at.button(key="ctl_bulk_cancel").click().run()
    at.button(key="wf_bulk_abort").click().run()  # "No": nothing happens
    assert [status_of(stack, w) for w in ids] == ["RUNNING", "RUNNING"]
    at.button(key="ctl_bulk_cancel").click().run()
    at.button(key="ctl_bulk_confirm").click().run()
    wait_for(lambda: all(status_of(stack, w) == "COMPENSATED" for w in ids), what="both compensated")

    # a second cancel is refused per item, with the API's reason
    at.button(key="ctl_bulk_cancel").click().run()
    at.button(key="ctl_bulk_confirm").click().run()
    assert any("0 of 2 succeeded" in w.value for w in at.warning)
    failures = at.dataframe[1].value
    assert set(failures["workflow_id"]) == set(ids) and all("illegal transition" in e for e in failures["error"])


def test_open_a_workflow(app, stack, flow):
    wid = start(stack, flow, correlation_id=f"open-{uuid.uuid4().hex[:6]}")
    at = open_page(app("viewer"), "workflows")
    at.selectbox(key="wf_open").select(wid).run()
    at.button(key="wf_open_go").click().run()
    assert not at.exception
    assert "Workflow" in [t.value for t in at.title] and wid in texts(at)
    assert at.query_params.get("id") == wid
