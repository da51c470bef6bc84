"""Readers for the public training/evaluation data sets (no Streamlit, no downloads)."""
