"""Project-wide rules checked on the source: layering and safe deserialisation (SE-13)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

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
        "sequence": {"encoder", "infer", "baselines", "metrics", "viz", "data", "evaluate", "train", "card"},
        "superres": {"degrade", "features", "infer", "metrics", "viz", "export", "data", "evaluate", "results", "train",
                     "card"},
    }
    for task, wanted in parts.items():
        missing = wanted - {p.stem for p in (ROOT / "medviz" / task).glob("*.py")}
        assert not missing, f"medviz/{task} lacks {sorted(missing)}"
    flat = sorted(p.name for p in (ROOT / "medviz").glob("*.py"))
    assert flat == ["__init__.py", "config.py", "constants.py", "evaluate.py", "explain.py", "options.py", "predict.py",
                    "types.py"], flat


#: Writers that finish the manifest dict they build (hashing the files it names) may read it back.
MANIFEST_WRITERS = {("medviz/train/engine.py", "export_model")}
_ENTRY_NAME = re.compile(r"(^|_)entry$")
_ENTRIES_NAME = re.compile(r"(^|_)(entries|models)$")  # {name: entry} mappings
_ENTRY_TEXT = re.compile(r"\bentry\.get\(|\.raw\[|\.raw\.get\(|\bentry\.raw\b")


def _is_entry(node: ast.AST) -> bool:
    """``entry`` / ``*_entry`` names, ``entries[...]`` / ``models[...]`` and ``job.promoted``: manifest dicts or
    registry entries."""
    if isinstance(node, ast.Name):
        return bool(_ENTRY_NAME.search(node.id))
    if isinstance(node, ast.Subscript):
        return isinstance(node.value, ast.Name) and bool(_ENTRIES_NAME.search(node.value.id))
    return isinstance(node, ast.Attribute) and node.attr == "promoted"


def manifest_dict_reads(source: str, path: str = "<string>") -> list[str]:
    """Reads of a manifest dict in ``source``: ``entry[...]``, ``entry.get(...)``, ``entries[name].get(...)``,
    any ``.raw`` (the registry's raw dict) and such text inside strings (code snippets). Code outside
    ``medviz/models`` reads the typed spec (``entry.spec``) instead; subscript assignments (writers) pass."""
    tree = ast.parse(source)
    exempt = [range(f.lineno, f.end_lineno + 1) for f in ast.walk(tree)
              if isinstance(f, (ast.FunctionDef, ast.AsyncFunctionDef)) and (path, f.name) in MANIFEST_WRITERS]
    found = []
    for node in ast.walk(tree):
        what = None
        if isinstance(node, ast.Attribute) and node.attr == "raw":
            what = ".raw"
        elif isinstance(node, ast.Subscript) and isinstance(node.ctx, ast.Load) and _is_entry(node.value) \
                and not isinstance(node.value, ast.Subscript):
            what = "entry[...]"
        elif isinstance(node, ast.Subscript) and isinstance(node.ctx, ast.Load) and isinstance(node.value, ast.Subscript) \
                and _is_entry(node.value) and isinstance(node.slice, ast.Constant) and isinstance(node.slice.value, str):
            what = "entries[...][...]"
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "get" \
                and _is_entry(node.func.value):
            what = ".get(...) on an entry"
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and _ENTRY_TEXT.search(node.value):
            what = "manifest read in a string"
        if what and not any(node.lineno in r for r in exempt):
            found.append(f"{path}:{node.lineno} {what}: {ast.get_source_segment(source, node) or ''}"[:160])
    return found


def test_no_manifest_dict_reads_outside_medviz_models():
    """Configuration is parsed into a typed spec once, at the registry (STYLE.md section 4, habit 2)."""
    offenders = []
    for path in SOURCES:
        rel = path.relative_to(ROOT).as_posix()
        if not rel.startswith("medviz/models/"):
            offenders += manifest_dict_reads(path.read_text(), rel)
    assert not offenders, "read the typed spec (entry.spec / medviz.models.specs) instead:\n" + "\n".join(offenders)


@pytest.mark.parametrize("code", [
    'threshold = float(entry.get("threshold", 0.5))',
    'x = prepare_input(image, entry.raw)',
    'layer = entry.raw["cam_layer"]',
    'test = (entry.raw.get("metrics") or {}).get("test")',
    'size = entry["input"]["size"]',
    'refs = entries[name].get("references", [])',
    'mode = models[name].get("mode", "recon")',
    'classes = entries[name]["classes"]',
    'card = job.promoted.get("card", "")',
    'SNIPPET = "predict(model, entry.raw, x)"',
])
def test_the_scan_finds_manifest_dict_reads(code):
    assert manifest_dict_reads(code), code


def test_the_scan_passes_spec_reads_and_writers():
    code = ('spec = entry.spec\nt = spec.threshold\nentry["sha256"] = "0"\nx = entries[name].spec.tta\n'
            'zips = entries[0][0]\ndef export_model(entry):\n    return entry["file"]\n')
    assert len(manifest_dict_reads(code, "medviz/x.py")) == 1  # only the read in export_model, not a listed writer
    assert manifest_dict_reads(code, "medviz/train/engine.py") == []
