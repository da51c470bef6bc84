"""Safe weight I/O: safetensors only for shipped models, sha256-checked at load."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from medviz.models.nets import build_network
from medviz.models.registry import ModelEntry, RegistryError, get_entry, verify_weights

FP16_MAX = 65504.0  # largest finite float16
# One shipped weights file at most (project limit 20 MB; 16 MB also fits what comes back from the GPU machine).
MAX_FILE_BYTES = 16 * 2**20


def _state(model: Any, half: bool) -> dict[str, Any]:
    """CPU copy of ``model.state_dict()``; with ``half``, floating tensors become fp16 except those
    fp16 cannot hold (any magnitude above 65504, e.g. the running variance of a batch-norm layer fed
    large activations), which stay fp32 so they do not become ``inf`` and silence the layer."""
    import torch

    state = {}
    for k, v in model.state_dict().items():
        v = v.detach().cpu().contiguous()
        if half and v.is_floating_point() and (v.numel() == 0 or float(v.abs().max()) <= FP16_MAX):
            v = v.to(torch.float16)
        state[k] = v
    return state


def _write(state: dict[str, Any], path: Path) -> None:
    """Write ``state`` as safetensors at ``path`` atomically (temporary file + rename)."""
    import os
    import tempfile

    from safetensors.torch import save_file

    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}-", suffix=".tmp")
    os.close(fd)
    try:
        save_file(state, tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def save_state_dict(model: Any, path: Path, half: bool = False) -> None:
    """Write ``model.state_dict()`` as one safetensors file, atomically (``half``: see :func:`_state`)."""
    _write(_state(model, half), path)


def save_weights(model: Any, out_dir: Path, name: str, half: bool = False,
                 max_bytes: int | None = None) -> list[str]:
    """Write a model for shipping: ``<name>.safetensors``, or when its tensors exceed ``max_bytes``,
    shards ``<name>-00001-of-0000N.safetensors`` holding whole tensors in state-dict order, each at most
    ``max_bytes`` (default :data:`MAX_FILE_BYTES`) of tensor data (a single larger tensor gets a shard
    of its own).

    Returns:
        The file names written (relative to ``out_dir``), in loading order.
    """
    max_bytes = MAX_FILE_BYTES if max_bytes is None else max_bytes
    state = _state(model, half)
    groups: list[dict[str, Any]] = [{}]
    size = 0
    for k, v in state.items():
        nbytes = v.numel() * v.element_size()
        if groups[-1] and size + nbytes > max_bytes:
            groups.append({})
            size = 0
        groups[-1][k] = v
        size += nbytes
    if len(groups) == 1:
        names = [f"{name}.safetensors"]
    else:
        names = [f"{name}-{i + 1:05d}-of-{len(groups):05d}.safetensors" for i in range(len(groups))]
    for group, file in zip(groups, names):
        _write(group, Path(out_dir) / file)
    return names


def load_state_dict(path: Path) -> dict[str, Any]:
    """Read a safetensors file to float32 tensors; errors become :class:`RegistryError`."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        state = load_file(str(path))
    except (SafetensorError, OSError, ValueError) as e:
        raise RegistryError(f"{path.name} is not a readable safetensors file: {e}") from e
    return {k: (v.float() if v.is_floating_point() else v) for k, v in state.items()}


def load_model(name: str, device: str = "cpu", weights_dir: Path | None = None) -> tuple[Any, ModelEntry]:
    """Build the registered network, check its sha256, load weights (strict) and set eval mode.

    Returns:
        ``(model, entry)``; the model is in ``eval()`` mode on ``device``.
    """
    entry = get_entry(name, weights_dir)
    paths = verify_weights(entry)
    model = build_network(entry.spec.arch.to_dict())
    state: dict[str, Any] = {}
    for path in paths:
        state.update(load_state_dict(path))
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as e:
        names = ", ".join(p.name for p in paths)
        raise RegistryError(f"Weights {names} do not fit the {entry.spec.arch.name} network: {e}") from e
    return model.to(device).eval(), entry


def load_member_runs(ensemble: Any, runs: list[Path]) -> None:
    """Load ``ensemble.members[i]`` (strict) from run ``runs[i]``: a finished run folder (its
    ``best.safetensors``) or a safetensors file.

    Raises:
        RegistryError: a run without ``best.safetensors``, or weights that do not fit the member.
    """
    for i, run in enumerate(runs):
        path = Path(run) / "best.safetensors" if Path(run).is_dir() else Path(run)
        if not path.is_file():
            raise RegistryError(f"ensemble member {run}: no best.safetensors (is it a finished run folder?)")
        try:
            ensemble.members[i].load_state_dict(load_state_dict(path), strict=True)
        except RuntimeError as e:
            raise RegistryError(f"ensemble member {run}: its weights do not fit the member network: {e}") from e
