"""The only Streamlit-aware corner of medviz: cached loaders, widgets and session-state keys."""
