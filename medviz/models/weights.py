"""Safe weight I/O: safetensors only for shipped models, sha256-checked at load."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from medviz.models.nets import build_network
from medviz.models.registry import ModelEntry, RegistryError, get_entry, verify_weights

FP16_MAX = 65504.0  # largest finite float16


def save_state_dict(model: Any, path: Path, half: bool = False) -> None:
    """Write ``model.state_dict()`` as safetensors, atomically.

    ``half``: floating tensors are stored as fp16, except those fp16 cannot hold (any magnitude above
    65504, e.g. the running variance of a batch-norm layer fed large activations), which stay fp32
    so they do not become ``inf`` and silence the layer."""
    import os
    import tempfile

    import torch
    from safetensors.torch import save_file

    state = {}
    for k, v in model.state_dict().items():
        v = v.detach().cpu().contiguous()
        if half and v.is_floating_point() and (v.numel() == 0 or float(v.abs().max()) <= FP16_MAX):
            v = v.to(torch.float16)
        state[k] = v
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}-", suffix=".tmp")
    os.close(fd)
    try:
        save_file(state, tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def load_state_dict(path: Path) -> dict[str, Any]:
    """Read a safetensors file to float32 tensors; errors become :class:`RegistryError`."""
    import torch
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
    path = verify_weights(entry)
    model = build_network(entry.raw["arch"])
    try:
        model.load_state_dict(load_state_dict(path), strict=True)
    except RuntimeError as e:
        raise RegistryError(f"Weights {path.name} do not fit the {entry.raw['arch'].get('name')} network: {e}") from e
    return model.to(device).eval(), entry
