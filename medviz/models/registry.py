"""One registry for every model family, backed by ``<weights_dir>/manifest.json``.

Each manifest entry describes one shipped model::

    {
      "name": "pneumonia_resnet",            # unique, used on the command line and pages
      "task": "classification",              # classification | segmentation | reconstruction
      "dataset": "PneumoniaMNIST",
      "file": "pneumonia_resnet.safetensors", # relative to the weights dir
      "sha256": "…",                          # checked at every load
      "shards": [{"file": "…", "sha256": "…"}, …],  # only for models split over several files
                                              # (each file <= 16 MB); "file"/"sha256" = the first
      "card": "pneumonia_resnet.md",          # model card, relative to the weights dir
      "arch": {"name": "DenseNet121", "kwargs": {…}},  # see medviz.models.nets.NETWORKS
      "classes": ["normal", "pneumonia"],     # task-specific fields follow
      …
    }

Writers (training, promotion) go through :func:`upsert_entry`, which takes a file lock and
replaces the manifest atomically, so concurrent writers never corrupt it.

The registry is two folders with a manifest each: the shipped models (``MEDVIZ_WEIGHTS_DIR``, the
project's ``weights/``) and the user-trained models promoted from the Training page
(``MEDVIZ_USER_MODELS_DIR``, outside the project). :func:`list_models` lists both; each entry's
:attr:`ModelEntry.origin` says which (``shipped`` or ``user-trained``; not a manifest key), and a user
model never shadows a shipped model of the same name (it is left out; promotion refuses such names).
"""

from __future__ import annotations

import difflib
import fcntl
import hashlib
import json
import os
import tempfile
import threading
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

from medviz.config import get_settings
from medviz.models.errors import RegistryError
from medviz.models.specs import ModelSpec, parse_spec

__all__ = ["MANIFEST_NAME", "ORIGINS", "SHIPPED", "USER_TRAINED", "ModelEntry", "RegistryError", "get_entry", "get_spec",
           "list_models", "manifest_path", "read_manifest", "registry_folders", "sha256_file", "upsert_entry",
           "verify_weights"]

MANIFEST_NAME = "manifest.json"
SHIPPED, USER_TRAINED = "shipped", "user-trained"
ORIGINS = (SHIPPED, USER_TRAINED)


@dataclass(frozen=True)
class ModelEntry:
    """A manifest entry, its typed spec and where its files live.

    ``raw`` is the manifest dict, read only inside :mod:`medviz.models`; everything else reads
    :attr:`spec`, the typed, read-only view parsed (and checked) when the entry is made. ``origin``
    is :data:`SHIPPED` (the project's weights) or :data:`USER_TRAINED` (promoted from a training run
    into the user models folder); it comes from the folder, not from the manifest.

    Raises:
        RegistryError: unknown task, unknown key or missing required key (named in the message).
    """

    raw: dict[str, Any]
    weights_dir: Path
    origin: str = SHIPPED
    spec: ModelSpec = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.origin not in ORIGINS:
            raise RegistryError(f"model origin {self.origin!r} is not one of {', '.join(ORIGINS)}")
        object.__setattr__(self, "spec", parse_spec(self.raw))

    @property
    def user_trained(self) -> bool:
        return self.origin == USER_TRAINED

    @property
    def label(self) -> str:
        """The name with its origin, for lists of models people choose from (``lgg_unet (shipped)``)."""
        return f"{self.name} ({self.origin})"

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def task(self) -> str:
        return self.spec.task

    @property
    def weights_path(self) -> Path:
        """The (first) weights file."""
        return self.weights_dir / self.spec.file

    @property
    def weight_files(self) -> list[tuple[Path, str | None]]:
        """Every weights file with its manifest sha256, in loading order (one unless sharded)."""
        if self.spec.shards:
            return [(self.weights_dir / s.file, s.sha256) for s in self.spec.shards]
        return [(self.weights_path, self.spec.sha256)]

    @property
    def card_path(self) -> Path | None:
        return self.weights_dir / self.spec.card if self.spec.card else None


def manifest_path(weights_dir: Path | None = None) -> Path:
    return (weights_dir or get_settings().weights_dir) / MANIFEST_NAME


def read_manifest(weights_dir: Path | None = None) -> list[dict[str, Any]]:
    path = manifest_path(weights_dir)
    if not path.exists():
        return []
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise RegistryError(f"{path} is not valid JSON: {e}") from e
    if not isinstance(data, dict) or not isinstance(data.get("models"), list):
        raise RegistryError(f"{path} must be an object with a 'models' list")
    return data["models"]


_PARSED: dict[tuple[Path, str], tuple[tuple[int, int], list[ModelEntry]]] = {}
_PARSED_LOCK = threading.Lock()


def registry_folders(weights_dir: Path | None = None) -> list[tuple[Path, str]]:
    """``(folder, origin)`` of the manifests :func:`list_models` reads for ``weights_dir``.

    None, the settings' weights folder or the user models folder: the registry, i.e. the shipped
    folder, then the user models folder (unless both are one folder); any other folder: that folder
    alone, its models counted as shipped.
    """
    settings = get_settings()
    shipped, user = settings.weights_dir, settings.user_models_dir
    if weights_dir is not None and not _same_folder(weights_dir, shipped) and not _same_folder(weights_dir, user):
        return [(Path(weights_dir), SHIPPED)]
    return [(shipped, SHIPPED)] if _same_folder(shipped, user) else [(shipped, SHIPPED), (user, USER_TRAINED)]


def _same_folder(a: Path, b: Path) -> bool:
    return os.path.realpath(a) == os.path.realpath(b)


def _parsed(wd: Path, origin: str) -> list[ModelEntry]:
    """The entries of ``wd``'s manifest, parsed once per manifest version (modification time and size)."""
    path = manifest_path(wd)
    try:
        st = path.stat()
        version = (st.st_mtime_ns, st.st_size)
    except FileNotFoundError:
        return []
    with _PARSED_LOCK:
        cached = _PARSED.get((path, origin))
    if cached is None or cached[0] != version:
        cached = (version, [ModelEntry(raw=m, weights_dir=wd, origin=origin) for m in read_manifest(wd)])
        with _PARSED_LOCK:
            _PARSED[(path, origin)] = cached
    return cached[1]


def list_models(task: str | None = None, weights_dir: Path | None = None) -> list[ModelEntry]:
    """Every registered model (of ``task``): the shipped ones, then the user-trained ones whose names
    no shipped model has (see :func:`registry_folders` for ``weights_dir``); each entry is parsed into
    its spec once per manifest version, and a bad entry raises :class:`RegistryError` naming it."""
    out: list[ModelEntry] = []
    names: set[str] = set()
    for wd, origin in registry_folders(weights_dir):
        for e in _parsed(wd, origin):
            if e.name not in names:  # a user model never shadows a shipped one
                names.add(e.name)
                out.append(e)
    return [e for e in out if task is None or e.task == task]


def get_entry(name: str, weights_dir: Path | None = None) -> ModelEntry:
    entries = list_models(weights_dir=weights_dir)
    for e in entries:
        if e.name == name:
            return e
    names = [e.name for e in entries]
    close = difflib.get_close_matches(name, names, n=1)
    hint = f" Did you mean {close[0]!r}?" if close else ""
    raise RegistryError(f"No model named {name!r} in the registry (known: {', '.join(names) or 'none'}).{hint}")


def get_spec(name: str, weights_dir: Path | None = None) -> ModelSpec:
    """The typed spec of the registered model ``name`` (see :attr:`ModelEntry.spec`)."""
    return get_entry(name, weights_dir).spec


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def verify_weights(entry: ModelEntry) -> list[Path]:
    """Return the weights paths (one, or every shard) after checking each exists and matches its
    manifest sha256."""
    paths = []
    for path, expected in entry.weight_files:
        if not path.exists():
            raise RegistryError(f"Weights file for {entry.name!r} is missing: {path}")
        actual = sha256_file(path)
        if actual != expected:
            raise RegistryError(
                f"Weights file {path.name} for {entry.name!r} fails its checksum "
                f"(manifest {str(expected)[:12]}…, file {actual[:12]}…); refusing to load it."
            )
        paths.append(path)
    return paths


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_suffix(".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def upsert_entry(entry: dict[str, Any], weights_dir: Path | None = None) -> None:
    """Add or replace (by ``name``) one manifest entry, atomically and under a file lock."""
    for key in ("name", "task", "file", "sha256"):
        if key not in entry:
            raise RegistryError(f"Manifest entry lacks {key!r}: {sorted(entry)}")
    parse_spec(entry)  # an entry that would not parse is never written
    path = manifest_path(weights_dir)
    with _locked(path):
        models = [m for m in read_manifest(path.parent) if m.get("name") != entry["name"]]
        models.append(entry)
        models.sort(key=lambda m: m["name"])
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".manifest-", suffix=".tmp")
        with os.fdopen(fd, "w") as f:
            json.dump({"models": models}, f, indent=2, sort_keys=False)
            f.write("\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)


def with_field(entry: ModelEntry, *keys: str, value: Any) -> dict[str, Any]:
    """A copy of ``entry``'s manifest object with the (nested) field ``keys`` set to ``value``, for
    :func:`upsert_entry` — the one place outside the typed specs where a manifest object is edited."""
    raw = json.loads(json.dumps(entry.raw))
    target = raw
    for key in keys[:-1]:
        target = target.setdefault(key, {})
    target[keys[-1]] = value
    return raw
