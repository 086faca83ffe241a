"""The dashboard's pages, run by ``st.navigation`` in ``dashboard/app.py`` (not a legacy ``pages/`` folder)."""
