"""What every page shares: the logged-in API client, cached reads, operator actions with their
outcome shown, error boxes instead of tracebacks, the login page and the sidebar.

Session state used across pages (never a secret outside ``api_key``):

- ``api_url``, ``api_key``, ``role``, ``key_id``, ``features``: the login;
- ``live`` and ``refresh_s``: live refresh on or off, and its period;
- ``workflow_id``: the workflow the Workflow page shows;
- ``wf_*``: the Workflows page's filters, page cursors and selection; ``svc_*``, ``wl_*``: the
  Services and Waveless pages' inputs.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import streamlit as st

from dashboard.api_client import ApiClient, ApiError, default_url

CONTROL_ROLES = ("operator", "admin")
CACHE_ENV = "WES_DASHBOARD_CACHE_SECONDS"
REFRESH_ENV = "WES_DASHBOARD_REFRESH_SECONDS"
REFRESH_CHOICES = (2, 5, 10, 30)
PAGES = {
    "overview": "app_pages/overview.py",
    "workflows": "app_pages/workflows.py",
    "workflow": "app_pages/workflow.py",
    "services": "app_pages/services.py",
    "waveless": "app_pages/waveless.py",
}
KEPT = (
    "live", "refresh_s", "wf_status", "wf_definition", "wf_corr", "wf_attention", "wf_limit", "wf_selected",
    "wf_open", "wf_reason", "wl_mode", "wl_wave_size", "wl_wave_interval", "wl_pin_kind", "wl_pin_value",
)  # fmt: skip
"""Widget keys whose values survive a page switch (Streamlit drops a widget's state when a run does
not draw it; writing it back at the top of every run keeps it)."""


# ============================================================================== session
def keep_state() -> None:
    for key in KEPT:
        if key in st.session_state:
            st.session_state[key] = st.session_state[key]


def logged_in() -> bool:
    return bool(st.session_state.get("api_key")) and bool(st.session_state.get("role"))


def api_url() -> str:
    url = st.session_state.get("api_url") or default_url()
    st.session_state["api_url"] = url
    return url


def client() -> ApiClient:
    return ApiClient(api_url(), st.session_state.get("api_key", ""))


def role() -> str:
    return str(st.session_state.get("role") or "")


def can_control() -> bool:
    """Operators and admins see control buttons; viewers see none."""
    return role() in CONTROL_ROLES


def feature(name: str) -> bool:
    return bool((st.session_state.get("features") or {}).get(name))


def refresh_every() -> float | None:
    """The live pages' ``run_every``: None while live refresh is off."""
    if not st.session_state.get("live", True):
        return None
    return float(st.session_state.get("refresh_s") or _default_refresh())


def _default_refresh() -> int:
    try:
        return max(1, int(float(os.environ.get(REFRESH_ENV, "5"))))
    except ValueError:
        return 5


def login(url: str, key: str) -> str | None:
    """Ask the API who this key is; on success remember it. Returns an error text on failure."""
    key = key.strip()
    if not key:
        return "Enter an API key."
    try:
        info = ApiClient(url, key).info()
    except ApiError as exc:
        if exc.unauthenticated:
            return f"Login failed: {exc.detail}"
        return f"Login failed: {exc}"
    st.session_state.update(
        api_url=url, api_key=key, role=info["role"], key_id=info.get("key_id", ""),
        features=info.get("features") or {}, api_version=info.get("version", ""),
    )  # fmt: skip
    return None


def logout() -> None:
    for key in ("api_key", "role", "key_id", "features", "workflow_id"):
        st.session_state.pop(key, None)
    _read.clear()


# ============================================================================== reads
def cache_seconds() -> float:
    try:
        return float(os.environ.get(CACHE_ENV, "2"))
    except ValueError:
        return 2.0


@st.cache_data(ttl=2, max_entries=500, show_spinner=False)
def _read(url: str, key: str, method: str, args: tuple[Any, ...], kwargs: tuple[tuple[str, Any], ...]) -> Any:
    return getattr(ApiClient(url, key), method)(*args, **dict(kwargs))


def read(method: str, *args: Any, **kwargs: Any) -> Any:
    """``ApiClient.<method>(...)``, shared for two seconds by every tab with the same key (many open
    tabs then cost the API one request per refresh, not one each). Raises ApiError."""
    url, key = api_url(), st.session_state.get("api_key", "")
    if cache_seconds() <= 0:
        return getattr(ApiClient(url, key), method)(*args, **kwargs)
    return _read(url, key, method, args, tuple(sorted(kwargs.items())))


@contextmanager
def shown_errors() -> Iterator[None]:
    """Inside: an ApiError becomes an error box (its problem ``detail``) and the block stops there."""
    try:
        yield
    except ApiError as exc:
        error_box(exc)


def error_box(exc: ApiError) -> None:
    if exc.unreachable:
        st.error(f"**The API is unreachable.** {exc.detail}", icon="🔌")
    elif exc.unauthenticated:
        st.error(f"**The API refused this key:** {exc.detail}. Log out and log in again.", icon="🔒")
    elif exc.status == 403:
        st.error(f"**Not allowed for a {role()} key:** {exc.detail}", icon="🚫")
    else:
        st.error(f"**{exc.detail}** (HTTP {exc.status}, `{exc.code}`)", icon="⚠️")


# ============================================================================== actions
def flash(kind: str, text: str) -> None:
    st.session_state.setdefault("flash", []).append((kind, text))


def show_flash() -> None:
    for kind, text in st.session_state.pop("flash", []):
        {"success": st.success, "error": st.error, "warning": st.warning}.get(kind, st.info)(text)


def act(done: str, call: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Run a control call (as a button callback); its outcome is flashed on the next draw. Cached
    reads are dropped so the next draw shows the state the call left."""
    try:
        result = call(*args, **kwargs)
    except ApiError as exc:
        flash("error", f"{done} — refused: {exc}")
        return None
    finally:
        _read.clear()
    flash("success", done)
    return result


def go(page: str, **state: Any) -> None:
    """Switch page (after a button), carrying state such as ``workflow_id``."""
    st.session_state.update(state)
    query = {"id": state["workflow_id"]} if page == "workflow" and state.get("workflow_id") else None
    st.switch_page(PAGES[page], query_params=query)


# ============================================================================== chrome
def header(title: str, caption: str | None = None) -> None:
    st.title(title)
    if caption:
        st.caption(caption)


def live_caption() -> None:
    every = refresh_every()
    stamp = time.strftime("%H:%M:%S", time.gmtime())
    if every:
        st.caption(f"Live: refreshes every {every:g} s · updated {stamp} UTC")
    else:
        st.caption(f"Live refresh is off (sidebar) · updated {stamp} UTC")


def sidebar() -> None:
    with st.sidebar:
        st.markdown(f"**API** `{api_url()}`")
        st.markdown(f"**Key** `{st.session_state.get('key_id', '')}` · role **{role()}**")
        if not can_control():
            st.caption("Read-only: a viewer key has no control buttons.")
        st.session_state.setdefault("live", True)
        st.session_state.setdefault("refresh_s", _nearest_choice(_default_refresh()))
        st.toggle("Live refresh", key="live")
        st.select_slider("Refresh every (s)", options=REFRESH_CHOICES, key="refresh_s")
        if st.button("Log out", key="logout", icon=":material/logout:"):
            logout()
            st.rerun()


def _nearest_choice(seconds: int) -> int:
    return min(REFRESH_CHOICES, key=lambda c: abs(c - seconds))


def login_page() -> None:
    """Log in with an API key: the API says which role it has."""
    st.title("WES operator console")
    st.caption("Log in with an API key of the control API (viewer, operator or admin).")
    st.session_state.setdefault("login_url", api_url())
    with st.form("login", clear_on_submit=False):
        st.text_input("API key", type="password", key="login_key", placeholder="wes_… or the key you were given")
        with st.expander("API address"):
            st.text_input("Control API URL", key="login_url")
        submitted = st.form_submit_button("Log in", type="primary", key="login_submit")
    if submitted:
        problem = login(str(st.session_state.get("login_url") or default_url()).strip(),
                        str(st.session_state.get("login_key") or ""))  # fmt: skip
        if problem is None:
            st.session_state.pop("login_error", None)
            st.rerun()
        st.session_state["login_error"] = problem
    if st.session_state.get("login_error"):
        st.error(st.session_state["login_error"], icon="🔒")


def session_login() -> bool:
    """A key put in the session beforehand (``api_key``, e.g. by a test) logs in once."""
    key = st.session_state.get("api_key")
    if not key or st.session_state.get("role"):
        return logged_in()
    problem = login(api_url(), str(key))
    if problem is not None:
        st.session_state.pop("api_key", None)
        st.session_state["login_error"] = problem
        return False
    return True
