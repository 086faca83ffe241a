"""The operator console: ``streamlit run dashboard/app.py`` (``wes up`` starts it; see
``wes_cli/components.py``). Log in with an API key, then Overview, Workflows, Services, Waveless.

The API address comes from ``WES_DASHBOARD_API_URL`` (default http://127.0.0.1:8000); the dashboard
reaches the engine only through that API.
"""

from __future__ import annotations

import sys
from pathlib import Path

_ROOT = str(Path(__file__).resolve().parent.parent)
if _ROOT not in sys.path:  # `streamlit run dashboard/app.py` puts only dashboard/ on the path
    sys.path.insert(0, _ROOT)

import streamlit as st  # noqa: E402

from dashboard import ui  # noqa: E402

st.set_page_config(page_title="WES operator console", page_icon="🏭", layout="wide")
ui.keep_state()

if ui.session_login():
    navigation = st.navigation(
        [
            st.Page(ui.PAGES["overview"], title="Overview", icon=":material/monitoring:", default=True),
            st.Page(ui.PAGES["workflows"], title="Workflows", icon=":material/list:"),
            st.Page(ui.PAGES["workflow"], title="Workflow", icon=":material/account_tree:"),
            st.Page(ui.PAGES["services"], title="Services", icon=":material/lan:"),
            st.Page(ui.PAGES["waveless"], title="Waveless", icon=":material/waves:"),
        ]
    )
    ui.sidebar()
else:
    navigation = st.navigation([st.Page(ui.login_page, title="Log in", icon=":material/login:")])
navigation.run()
