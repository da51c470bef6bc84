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


def _medviz_imports_below_module_level(tree: ast.Module) -> list[int]:
    """Line numbers of ``medviz`` imports that are not module-level statements (``if TYPE_CHECKING:`` allowed)."""
    top = {id(n) for n in tree.body}
    type_checking = {id(c) for n in tree.body if isinstance(n, ast.If) and "TYPE_CHECKING" in ast.unparse(n.test)
                     for c in ast.walk(n)}
    lines = []
    for node in ast.walk(tree):
        internal = (isinstance(node, ast.ImportFrom) and (node.module or "").startswith("medviz")) or \
                   (isinstance(node, ast.Import) and any(a.name.startswith("medviz") for a in node.names))
        if internal and id(node) not in top and id(node) not in type_checking:
            lines.append(node.lineno)
    return lines


def test_internal_imports_are_at_module_top():
    """Function-local imports are for heavy third-party libraries only; a hidden internal cycle would need one."""
    offenders = []
    for path in SOURCES:
        offenders += [f"{path.relative_to(ROOT)}:{n}" for n in _medviz_imports_below_module_level(ast.parse(path.read_text()))]
    assert not offenders, offenders


def test_the_scan_finds_a_function_local_import():
    tree = ast.parse("def f():\n    from medviz.types import Volume\n    return Volume\n")
    assert _medviz_imports_below_module_level(tree) == [2]


def test_import_contracts_hold():
    """The layer, Streamlit and no-cycle contracts in pyproject.toml ([tool.importlinter]) are kept."""
    import shutil
    import subprocess

    exe = shutil.which("lint-imports")
    assert exe, "import-linter is not installed (pip install -r requirements.txt)"
    out = subprocess.run([exe, "--no-cache"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stdout[-4000:] + out.stderr[-2000:]


def test_each_task_package_has_its_parts():
    """A newcomer finds every behaviour of a task in its package (the layout of the architecture issue)."""
    parts = {
        "classification": {"preprocess", "infer", "calibration", "metrics", "viz", "data", "evaluate", "train", "card"},
        "segmentation": {"preprocess", "infer", "measure", "viz", "export", "reference", "data", "evaluate", "train",
                         "card"},
        "reconstruction": {"kspace", "infer", "baselines", "metrics", "viz", "data", "evaluate", "train", "card"},
    }
    for task, wanted in parts.items():
        missing = wanted - {p.stem for p in (ROOT / "medviz" / task).glob("*.py")}
        assert not missing, f"medviz/{task} lacks {sorted(missing)}"
    flat = sorted(p.name for p in (ROOT / "medviz").glob("*.py"))
    assert flat == ["__init__.py", "config.py", "constants.py", "evaluate.py", "explain.py", "types.py"], flat
