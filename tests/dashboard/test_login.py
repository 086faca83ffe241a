"""Logging in with an API key against the real API, and errors shown as messages, never tracebacks."""

from __future__ import annotations

import pytest

from engine.persistence.embedded import free_port
from tests.dashboard.conftest import control_keys, open_page, texts

pytestmark = pytest.mark.timeout(60)


def test_login_form_with_an_operator_key(app, stack):
    at = app(role=None).run()
    assert not at.exception
    assert at.title[0].value == "WES operator console" and "role" not in at.session_state
    at.text_input(key="login_key").input(stack.keys["operator"])
    at.button(key="login_submit").click().run()
    assert not at.exception, [e.value for e in at.exception]
    assert at.session_state["role"] == "operator" and at.session_state["key_id"]
    assert "Overview" in [t.value for t in at.title]
    assert "role **operator**" in texts(at)


def test_a_wrong_key_shows_the_apis_refusal(app, stack):
    at = app(role=None).run()
    at.text_input(key="login_key").input("not-a-key")
    at.button(key="login_submit").click().run()
    assert not at.exception
    (error,) = at.error
    assert error.value.startswith("Login failed: ") and "key" in error.value.lower()
    assert "role" not in at.session_state and "Overview" not in [t.value for t in at.title]
    assert not control_keys(at)

    # a key put in the session beforehand goes through the same check
    at = app(key="wrong-key-too").run()
    assert not at.exception and at.error[0].value.startswith("Login failed: ")
    assert "api_key" not in at.session_state


def test_an_unreachable_api_is_a_message(app):
    dead = f"http://127.0.0.1:{free_port()}"
    at = app(key="anything", url=dead).run()
    assert not at.exception
    assert "unreachable" in at.error[0].value and dead in at.error[0].value

    # logged in earlier, then the API went away: every page says so, none raises
    for page in ("overview", "workflows", "workflow", "services", "waveless"):
        at = app(role=None, url=dead)
        for k, v in {"api_key": "k", "role": "operator", "key_id": "k1", "features": {"chaos": True},
                     "workflow_id": "abc"}.items():  # fmt: skip
            at.session_state[k] = v
        open_page(at, page)
        assert at.error, page
        assert all("unreachable" in e.value for e in at.error), [e.value for e in at.error]


def test_a_problem_detail_is_shown(app, stack):
    at = open_page(app("viewer"), "workflow", workflow_id="no-such-workflow")
    assert not at.exception
    messages = [e.value for e in at.error]
    assert any("no workflow with id 'no-such-workflow'" in m and "404" in m for m in messages), messages


def test_log_out(app, stack):
    at = app("viewer").run()
    assert at.session_state["role"] == "viewer"
    at.button(key="logout").click().run()
    assert not at.exception
    assert "api_key" not in at.session_state and at.title[0].value == "WES operator console"
