"""MedViz: a dashboard library for viewing medical scans with deep-learning models.

Heavy libraries (torch, MONAI, pydicom) are imported lazily by the modules that need them, so
``import medviz`` stays fast for page loads and tests. Only ``medviz.ui`` imports Streamlit.
"""

from medviz.types import LoadError, MedvizError, Volume

__version__ = "0.1.0"
__all__ = ["LoadError", "MedvizError", "Volume", "__version__"]
