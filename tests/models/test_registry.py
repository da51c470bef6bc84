"""The model registry: manifest round trip, sha256 refusal, allowlisted networks, safe weights."""

from __future__ import annotations

import json
import threading

import pytest
import torch

from medviz.models.nets import build_network
from medviz.models.registry import RegistryError, get_entry, list_models, read_manifest, upsert_entry
from medviz.models.weights import load_model, load_state_dict, save_state_dict

ARCH = {"name": "DenseNet", "kwargs": {"spatial_dims": 2, "in_channels": 1, "out_channels": 2,
                                       "init_features": 4, "growth_rate": 4, "block_config": (2,)}}


#: the classifier keys every entry needs besides name, task, file and arch
CLASSIFIER = {"classes": ["a", "b"], "input": {"channels": 1, "size": 28}, "cam_layer": "features"}


def _ship(tmp_path, name="tiny", half=False):
    from medviz.models.registry import sha256_file

    torch.manual_seed(0)
    net = build_network(ARCH)
    path = tmp_path / f"{name}.safetensors"
    save_state_dict(net, path, half=half)
    upsert_entry({"name": name, "task": "classification", "file": path.name, "sha256": sha256_file(path), "arch": ARCH,
                  **CLASSIFIER}, tmp_path)
    return net


def test_round_trip_loads_identical_weights(tmp_path):
    net = _ship(tmp_path)
    model, entry = load_model("tiny", weights_dir=tmp_path)
    assert entry.task == "classification"
    assert not model.training
    for k, v in net.state_dict().items():
        assert torch.equal(model.state_dict()[k], v), k


def test_checksum_mismatch_is_refused(tmp_path):
    _ship(tmp_path)
    path = tmp_path / "tiny.safetensors"
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(RegistryError, match="fails its checksum"):
        load_model("tiny", weights_dir=tmp_path)


def test_unknown_model_suggests_close_name(tmp_path):
    _ship(tmp_path, name="breast_densenet")
    with pytest.raises(RegistryError, match="Did you mean 'breast_densenet'"):
        get_entry("breast_densnet", tmp_path)


def test_network_outside_allowlist_is_refused():
    with pytest.raises(RegistryError, match="Unknown network"):
        build_network({"name": "os.system", "kwargs": {}})


def test_corrupt_safetensors_gives_clear_error(tmp_path):
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"\xff" * 8 + b"{not json")
    with pytest.raises(RegistryError, match="not a readable safetensors"):
        load_state_dict(bad)


def test_fp16_weights_load_as_float32(tmp_path):
    _ship(tmp_path, half=True)
    model, _ = load_model("tiny", weights_dir=tmp_path)
    assert all(p.dtype == torch.float32 for p in model.parameters())


def test_concurrent_upserts_keep_every_entry(tmp_path):
    def add(i):
        upsert_entry({"name": f"m{i}", "task": "classification", "file": f"m{i}.safetensors", "sha256": "0",
                      "arch": ARCH, **CLASSIFIER}, tmp_path)

    threads = [threading.Thread(target=add, args=(i,)) for i in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(m["name"] for m in read_manifest(tmp_path)) == sorted(f"m{i}" for i in range(12))
    json.loads((tmp_path / "manifest.json").read_text())
    assert len(list_models(weights_dir=tmp_path)) == 12


def test_shipped_manifest_entries_verify():
    """Every model shipped in weights/ exists, passes its checksum and has a model card."""
    from medviz.models.registry import verify_weights

    for entry in list_models():
        verify_weights(entry)
        assert entry.card_path is not None and entry.card_path.exists(), entry.name
        for path, _ in entry.weight_files:
            assert path.stat().st_size <= 20 * 1024 * 1024, (entry.name, path.name)


def test_half_precision_keeps_tensors_fp16_cannot_hold(tmp_path):
    """A batch-norm running variance above 65504 would become inf in fp16 and zero the layer's output."""
    import torch
    from safetensors.torch import load_file

    from medviz.models.weights import load_state_dict, save_state_dict

    model = torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3), torch.nn.BatchNorm2d(2)).eval()
    model[1].running_var.fill_(1.2e5)
    model[1].running_mean.fill_(300.0)
    save_state_dict(model, tmp_path / "m.safetensors", half=True)
    raw = load_file(str(tmp_path / "m.safetensors"))
    assert raw["1.running_var"].dtype == torch.float32 and raw["0.weight"].dtype == torch.float16
    assert raw["1.running_mean"].dtype == torch.float16
    copy = torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3), torch.nn.BatchNorm2d(2)).eval()
    copy.load_state_dict(load_state_dict(tmp_path / "m.safetensors"))
    x = torch.randn(1, 1, 8, 8) * 1000
    assert torch.allclose(copy(x), model(x), rtol=1e-2, atol=1e-2) and copy(x).abs().max() > 0


def _ship_sharded(tmp_path, max_bytes: int):
    from medviz.models.registry import sha256_file
    from medviz.models.weights import save_weights

    torch.manual_seed(0)
    net = build_network(ARCH)
    files = save_weights(net, tmp_path, "big", max_bytes=max_bytes)
    shards = [{"file": f, "sha256": sha256_file(tmp_path / f)} for f in files]
    upsert_entry({"name": "big", "task": "classification", "file": files[0], "sha256": shards[0]["sha256"],
                  "shards": shards, "arch": ARCH, **CLASSIFIER}, tmp_path)
    return net, files


def test_weights_larger_than_one_file_are_sharded_and_load_back_identically(tmp_path):
    from safetensors.torch import load_file

    from medviz.models.weights import save_weights

    net, files = _ship_sharded(tmp_path, max_bytes=2048)
    assert len(files) >= 3 and files[0] == f"big-00001-of-{len(files):05d}.safetensors"
    keys = [set(load_file(str(tmp_path / f))) for f in files]
    assert set().union(*keys) == set(net.state_dict()) and sum(map(len, keys)) == len(net.state_dict())
    for f in files:  # whole tensors, at most max_bytes each unless a single tensor is larger
        tensors = load_file(str(tmp_path / f))
        assert len(tensors) == 1 or sum(v.numel() * v.element_size() for v in tensors.values()) <= 2048
    model, entry = load_model("big", weights_dir=tmp_path)
    assert [p.name for p, _ in entry.weight_files] == files
    for k, v in net.state_dict().items():
        assert torch.equal(model.state_dict()[k], v), k
    assert save_weights(net, tmp_path / "one", "small") == ["small.safetensors"]  # fits: one file


def test_a_tampered_or_missing_shard_is_refused(tmp_path):
    _, files = _ship_sharded(tmp_path, max_bytes=2048)
    last = tmp_path / files[-1]
    data = bytearray(last.read_bytes())
    data[-1] ^= 0xFF
    last.write_bytes(bytes(data))
    with pytest.raises(RegistryError, match=f"{files[-1]} for 'big' fails its checksum"):
        load_model("big", weights_dir=tmp_path)
    last.unlink()
    with pytest.raises(RegistryError, match="is missing"):
        load_model("big", weights_dir=tmp_path)


def test_the_registry_lists_shipped_and_user_trained_models_each_marked(tmp_path, monkeypatch):
    from medviz.models.registry import SHIPPED, USER_TRAINED

    shipped, user, other = tmp_path / "weights", tmp_path / "user", tmp_path / "other"
    monkeypatch.setenv("MEDVIZ_WEIGHTS_DIR", str(shipped))
    monkeypatch.setenv("MEDVIZ_USER_MODELS_DIR", str(user))
    _ship(shipped, "tiny")
    _ship(user, "mine")
    _ship(user, "tiny")  # a user model under a shipped name (written by hand): never shadows the shipped one
    _ship(other, "elsewhere")
    entries = list_models(task="classification")
    assert [(e.name, e.origin) for e in entries] == [("tiny", SHIPPED), ("mine", USER_TRAINED)]
    assert [e.label for e in entries] == ["tiny (shipped)", "mine (user-trained)"]
    assert [e.user_trained for e in entries] == [False, True]
    assert get_entry("tiny").weights_dir == shipped and get_entry("mine").weights_dir == user
    assert all("origin" not in e.raw for e in entries)  # the marker is the folder's, not a manifest key
    model, entry = load_model("mine")
    assert entry.origin == USER_TRAINED and not model.training
    # either configured folder names the registry; any other folder is read alone
    assert [e.name for e in list_models(weights_dir=user)] == ["tiny", "mine"]
    assert [(e.name, e.origin) for e in list_models(weights_dir=other)] == [("elsewhere", SHIPPED)]
    with pytest.raises(RegistryError, match="origin"):
        type(entry)(raw=entry.raw, weights_dir=user, origin="downloaded")


def test_the_model_pages_mark_user_trained_models(tmp_path, monkeypatch):
    from medviz.ui.classification import card_summary
    from medviz.ui.segmentation import model_label

    monkeypatch.setenv("MEDVIZ_WEIGHTS_DIR", str(tmp_path / "weights"))
    monkeypatch.setenv("MEDVIZ_USER_MODELS_DIR", str(tmp_path / "user"))
    _ship(tmp_path / "weights", "tiny")
    _ship(tmp_path / "user", "mine")
    entries = {e.name: e for e in list_models(task="classification")}
    assert "· shipped model" in card_summary(entries["tiny"]).splitlines()[0]
    assert "· user-trained model" in card_summary(entries["mine"]).splitlines()[0]
    assert model_label("lgg_unet") == "lgg_unet"  # not registered here: the name alone
    from tests.models.test_specs import _minimal

    upsert_entry(_minimal("segmentation", name="seg_mine", sha256="0"), tmp_path / "user")
    assert model_label("seg_mine") == "seg_mine (user-trained)"
