"""Study loading widgets: bundled examples and uploads (files, folders, zip archives).

A new study replaces the session's current one (``medviz.ui.state.set_volume``) only when it
loaded; on failure the previous study stays and the reason is shown with ``st.error``. Loader
messages are kept in ``st.session_state`` so that they stay visible across reruns.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import streamlit as st

from medviz.config import get_settings
from medviz.io import load_files
from medviz.io.examples import DEFAULT_EXAMPLE, START_HERE
from medviz.io.relabel import NIFTI_LABELS, current_label, has_no_declared_labels, relabel, suggest_labels
from medviz.types import MedvizError, Volume
from medviz.ui import cache
from medviz.ui.state import get_volume, get_volume_source, no_study_message, set_volume
from medviz.ui.widgets import escape_md

if TYPE_CHECKING:
    from medviz.io import LoadResult

log = logging.getLogger(__name__)

EXAMPLE_SELECT_KEY = "viewer.example"
_EXAMPLE_LOADED_KEY = "medviz.viewer.example_loaded"  # (example key, Volume) last opened
_UPLOAD_KEY = "medviz.viewer.upload"  # UploadStatus of the last upload
_UPLOAD_GEN_KEY = "medviz.viewer.upload_gen"  # bumped to reset (and free) the uploader
_UPLOAD_MODES = ("Files", "Folder")
_LABELS_KEY = "medviz.viewer.labels"  # {study id: label} chosen for NIfTI studies in this session


@dataclass
class UploadStatus:
    """What the last upload produced (kept in the session; holds this user's volumes)."""

    n_files: int
    error: str | None = None
    result: LoadResult | None = None
    problems: list[tuple[str, str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def _open_example(key: str) -> str | None:
    """Make example ``key`` the current study. Returns an error message, or None on success."""
    titles = {e.key: e.title for e in cache.examples()}
    try:
        volume = cache.example_volume(key)
    except (MedvizError, OSError, ValueError) as exc:
        return f"Example {titles.get(key, key)!r} could not be opened: {exc}"
    set_volume(volume, f"Example: {titles.get(key, key)}")
    st.session_state[_EXAMPLE_LOADED_KEY] = (key, volume)
    return None


def _on_example_change() -> None:
    key = st.session_state.get(EXAMPLE_SELECT_KEY)
    if key is not None:
        st.session_state["medviz.viewer.example_error"] = _open_example(key)


def example_picker() -> None:
    """Examples selectbox; opens the first example when the session has no study yet."""
    try:
        examples = cache.examples()
    except (MedvizError, OSError, ImportError) as exc:
        st.error(f"Bundled examples unavailable: {escape_md(exc)}")
        return
    if not examples:
        st.info("No bundled examples are installed; upload a study below.")
        return
    by_key = {e.key: e for e in examples}
    if get_volume() is None:  # a new session (also after a browser reload) opens on the demo's first screen
        first = DEFAULT_EXAMPLE if DEFAULT_EXAMPLE in by_key else examples[0].key
        st.session_state["medviz.viewer.example_error"] = _open_example(first)
    current = current_example()
    st.session_state[EXAMPLE_SELECT_KEY] = current  # show which example is open (None: an upload)
    st.selectbox(
        "Example studies", list(by_key), key=EXAMPLE_SELECT_KEY, on_change=_on_example_change,
        format_func=lambda k: by_key[k].title, placeholder="Choose an example…",
        help="Real studies shipped with the installed packages (no download): " + "; ".join(
            f"{e.title}: {e.description}" for e in examples),
    )  # fmt: skip
    if current is not None:
        st.caption(f"{escape_md(by_key[current].description)}  \nSource: {escape_md(by_key[current].source)}")
    if err := st.session_state.get("medviz.viewer.example_error"):
        st.error(escape_md(err))


def no_study_panel(key: str, purpose: str) -> None:
    """The explanation of a page without a study (a new session, e.g. after a reload) and a button that opens
    the bundled example (:data:`~medviz.io.examples.DEFAULT_EXAMPLE`) as the current study."""
    st.info(no_study_message(purpose), icon=":material/refresh:")
    open_example_button(key)


def open_example_button(key: str) -> None:
    """A button that opens the bundled example (:data:`~medviz.io.examples.DEFAULT_EXAMPLE`) as the current
    study and reruns the page; ``key`` prefixes its widget key."""
    title = next((e.title for e in cache.examples() if e.key == DEFAULT_EXAMPLE), DEFAULT_EXAMPLE)
    if st.button(f"Open the bundled example ({title})", key=f"{key}.open_example"):
        if (err := _open_example(DEFAULT_EXAMPLE)) is not None:
            st.error(escape_md(err))
        else:
            st.rerun()


def current_example() -> str | None:
    """The key of the bundled example that is this session's current study, or None (an upload, or nothing)."""
    loaded = st.session_state.get(_EXAMPLE_LOADED_KEY)
    return loaded[0] if loaded and get_volume() is not None and loaded[1] is get_volume() else None


def start_here() -> str | None:
    """The first screen's "start here" line while the demo's default example is open, else None."""
    return START_HERE if current_example() == DEFAULT_EXAMPLE else None


def _read_upload(files: list) -> UploadStatus:
    """Run the loaders on uploaded files; the current study changes only on success."""
    status = UploadStatus(n_files=len(files))
    total = sum(f.size for f in files)
    limit = get_settings().limits.max_upload_bytes
    if total > limit:
        status.error = f"The upload is {total / 2**20:.0f} MB; the limit is {limit / 2**20:.0f} MB."
        return status
    try:
        result = load_files([(f.name, f.getvalue()) for f in files])
    except MedvizError as exc:  # LoadError: nothing usable
        status.error = str(exc)
        return status
    except Exception as exc:  # noqa: BLE001 - the page must never show a traceback
        log.error("upload loader failed with %s", type(exc).__name__)  # no file names: may identify
        status.error = "The files could not be read because of an unexpected problem in the reader (logged on the server)."
        return status
    status.problems = [(p.source, p.problem) for p in result.problems]
    status.notes = list(result.notes)
    if not result.series:
        status.error = "No readable images in the upload."
        return status
    status.result = result
    set_volume(result.series[0].volume, f"Upload ({len(files)} file{'s' * (len(files) > 1)})")
    return status


def _series_picker(status: UploadStatus) -> None:
    series = status.result.series if status.result else []
    if len(series) < 2:
        return
    labels = {s.key: s.label for s in series}
    key = f"viewer.series.{st.session_state.get(_UPLOAD_GEN_KEY, 0)}"

    def pick() -> None:
        chosen = next(s for s in series if s.key == st.session_state[key])
        set_volume(chosen.volume, f"Upload ({status.n_files} files): {chosen.label}")

    st.selectbox(f"{len(series)} series found; show", list(labels), format_func=labels.get, key=key, on_change=pick)


def upload_panel() -> None:
    """Uploader (files, zip archives or a folder) with the last upload's messages below it."""
    mode = st.segmented_control("Upload", _UPLOAD_MODES, default="Files", key="viewer.upload_mode") or "Files"
    gen = st.session_state.get(_UPLOAD_GEN_KEY, 0)
    files = st.file_uploader(
        "DICOM (with or without .dcm), NIfTI, PNG/JPEG or .zip",
        accept_multiple_files="directory" if mode == "Folder" else True,
        key=f"viewer.uploader.{mode}.{gen}",
        help="Several series in one upload: you choose which one to show. Files stay in this session only.",
    )  # fmt: skip
    if files:
        with st.spinner(f"Reading {len(files)} file(s)…"):
            st.session_state[_UPLOAD_KEY] = _read_upload(files)
        st.session_state[_UPLOAD_GEN_KEY] = gen + 1  # a fresh, empty uploader frees the bytes
        st.rerun()
    status: UploadStatus | None = st.session_state.get(_UPLOAD_KEY)
    if status is None:
        return
    if status.error:
        st.error(f"Upload not loaded; the previous study stays open. {escape_md(status.error)}")
    if status.problems:
        lines = "\n".join(f"- **{escape_md(src)}**: {escape_md(msg)}" for src, msg in status.problems)
        st.warning(f"{len(status.problems)} file(s) skipped:\n{lines}")
    for note in status.notes:
        st.caption(escape_md(note))
    _series_picker(status)


def _study_id(volume: Volume) -> str:
    """Names a study across reopenings in this session (file name and shape; no patient data)."""
    return f"{volume.name}|{'x'.join(map(str, volume.shape))}"


def _show_as(volume: Volume, label: str) -> None:
    """Make ``volume`` under ``label`` (a key of NIFTI_LABELS) the current study, keeping it the open example."""
    example = current_example()
    relabelled = relabel(volume, label)
    set_volume(relabelled, get_volume_source())
    if example is not None:
        st.session_state[_EXAMPLE_LOADED_KEY] = (example, relabelled)


def labels_panel() -> None:
    """Modality and units of a NIfTI study (its file states none), for HU presets on a CT NIfTI.

    The choice is remembered for the study in this session (reopening it shows it the same way); when the
    declared modality or the values plainly say CT, a note suggests it. Nothing is relabelled silently.
    """
    volume = get_volume()
    if volume is None or not has_no_declared_labels(volume):
        return
    chosen: dict[str, str] = st.session_state.setdefault(_LABELS_KEY, {})
    sid = _study_id(volume)
    if chosen.get(sid, current_label(volume)) != current_label(volume):
        _show_as(volume, chosen[sid])
        volume = get_volume()
    key = f"viewer.labels.{sid}"
    st.session_state[key] = current_label(volume)  # seeded every run: it follows the study shown

    def choose() -> None:
        if (label := st.session_state[key]) is not None:
            chosen[sid] = label
            _show_as(get_volume(), label)

    st.selectbox("Modality and units", list(NIFTI_LABELS), key=key, on_change=choose,
                 placeholder=f"{volume.modality} ({volume.units}), as loaded",
                 help="A NIfTI file does not say what it holds: choose CT (HU) for the CT window presets. "
                      "The choice is kept for this study while the session lasts.")
    if (hint := suggest_labels(volume)) is not None:
        st.info(f"Suggested: {hint.label}, because {escape_md(hint.reason)}. Choose it above for the HU window "
                "presets.", icon=":material/lightbulb:")
