"""Project-wide rules checked on the source: layering and safe deserialisation (SE-13)."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SOURCES = [p for d in ("medviz", "pages", "bench") for p in (ROOT / d).rglob("*.py")] + [ROOT / "app.py"]


def _calls(tree: ast.AST):
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            yield node


def test_only_ui_and_pages_import_streamlit():
    offenders = []
    for path in (ROOT / "medviz").rglob("*.py"):
        if "ui" in path.relative_to(ROOT / "medviz").parts[:1]:
            continue
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            if any(n == "streamlit" or n.startswith("streamlit.") for n in names):
                offenders.append(str(path.relative_to(ROOT)))
    assert not offenders, f"streamlit imported outside medviz/ui: {offenders}"


def test_no_unsafe_deserialisation():
    offenders = []
    for path in SOURCES:
        tree = ast.parse(path.read_text())
        for call in _calls(tree):
            fn = ast.unparse(call.func)
            kw = {k.arg: ast.unparse(k.value) for k in call.keywords}
            if fn.endswith("torch.load") and kw.get("weights_only") != "True":
                offenders.append(f"{path.name}:{call.lineno} torch.load without weights_only=True")
            if fn in ("pickle.load", "pickle.loads", "cloudpickle.loads"):
                offenders.append(f"{path.name}:{call.lineno} {fn}")
            if fn.endswith("np.load") and kw.get("allow_pickle") not in (None, "False"):
                offenders.append(f"{path.name}:{call.lineno} np.load with allow_pickle")
    assert not offenders, offenders


def test_no_folder_named_dl_on_path():
    """python-gdcm runs `import dl`; a local `dl` package breaks pydicom (STACK.md pitfall 1)."""
    assert not (ROOT / "dl").exists() and not (ROOT / "dl.py").exists()
