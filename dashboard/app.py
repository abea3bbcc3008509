"""Driftline's dashboard: ``streamlit run dashboard/app.py`` (or ``driftline dashboard``).

It reads only the query API (``DRIFTLINE_API``, default http://127.0.0.1:8000), never the store's files.
"""

from __future__ import annotations

import sys
from pathlib import Path

_ROOT = str(Path(__file__).resolve().parents[1])
if _ROOT not in sys.path:  # `streamlit run` puts only this folder on the path
    sys.path.insert(0, _ROOT)

import streamlit as st  # noqa: E402

from dashboard import shell  # noqa: E402

st.set_page_config(page_title="Driftline", page_icon=":material/monitoring:", layout="wide")
PAGES = [
    st.Page("views/executive.py", title="Executive", icon=":material/dashboard:", default=True),
    st.Page("views/oncall.py", title="On-call", icon=":material/notifications_active:", url_path="oncall"),
    st.Page("views/debug.py", title="Debug", icon=":material/troubleshoot:", url_path="debug"),
    st.Page("views/slos.py", title="SLOs and alerts", icon=":material/target:", url_path="slos"),
    st.Page("views/lifecycle.py", title="Lifecycle", icon=":material/rocket_launch:", url_path="lifecycle"),
    st.Page("views/governance.py", title="Governance", icon=":material/policy:", url_path="governance"),
]
page = st.navigation(PAGES)
with shell.entry_context() as ctx:
    if ctx is not None:
        page.run()
