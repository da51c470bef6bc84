"""Typed specs of manifest entries (medviz.models.specs): every shipped entry parses, defaults live in
one place, and unknown or missing keys are errors that name the model and the key."""

from __future__ import annotations

import copy
import dataclasses
import json
from pathlib import Path

import pytest

from medviz.models.registry import RegistryError, get_spec, list_models, upsert_entry
from medviz.models.specs import (
    DEFAULT_SEG_CAM_LAYER,
    SPEC_TYPES,
    ClassifierSpec,
    InputSpec,
    ReconSpec,
    SegmenterSpec,
    SequenceSpec,
    SuperResSpec,
    parse_spec,
)

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = json.loads((ROOT / "weights" / "manifest.json").read_text())["models"]
ARCH = {"name": "UNet", "kwargs": {"spatial_dims": 2, "in_channels": 1, "out_channels": 1}}


def _shipped(name: str) -> dict:
    return copy.deepcopy(next(m for m in SHIPPED if m["name"] == name))


def _minimal(task: str, **keys) -> dict:
    entry = {"name": "m", "task": task, "file": "m.safetensors", "arch": ARCH, **keys}
    if task == "classification":
        entry = {"classes": ["a", "b"], "input": {"channels": 1, "size": 28}, "cam_layer": "layer3", **entry}
    return entry


def test_every_shipped_entry_parses():
    names = {m["name"]: type(parse_spec(m)) for m in SHIPPED}
    assert names == {"breast_resnet": ClassifierSpec, "pneumonia_resnet": ClassifierSpec, "pneumonia_cxr224": ClassifierSpec,
                     "retina_resnet": ClassifierSpec, "lgg_unet": SegmenterSpec,
                     "lgg_flair_recon": ReconSpec, "lgg_flair_denoise": ReconSpec, "lgg_slice_gru": SequenceSpec,
                     "lgg_flair_sr4_pixel": SuperResSpec, "lgg_flair_sr4_gan": SuperResSpec}
    for m in SHIPPED:  # every key of every shipped entry is known to its task
        assert set(m) <= SPEC_TYPES[m["task"]].known_keys(), m["name"]


def test_the_shipped_gan_names_its_pixel_loss_twin():
    pixel, gan = get_spec("lgg_flair_sr4_pixel"), get_spec("lgg_flair_sr4_gan")
    assert (pixel.mode, pixel.scale, pixel.degradation, pixel.twin) == ("pixel", 4, "area", None)
    assert (gan.mode, gan.twin, gan.segmenter) == ("gan", "lgg_flair_sr4_pixel", "lgg_unet")


def test_shipped_values_are_read_through_the_spec():
    seg = get_spec("lgg_unet")
    assert (seg.threshold, seg.min_size, seg.tta, seg.layout, seg.data) == (0.4, 800, "lr_flip", "lgg", None)
    assert seg.in_channels == 3 and seg.modality == "MR" and seg.label_name == "FLAIR abnormality"
    assert seg.cam_layer == DEFAULT_SEG_CAM_LAYER and seg.input.channels[1] == "FLAIR"
    pneu = get_spec("pneumonia_resnet")
    assert pneu.input == InputSpec(channels=1, size=28, native_size=28, modality="DX",
                                   modality_label="chest X-ray (paediatric, frontal)", intensity_range=(0, 255),
                                   views=("AP",), age_years=(1.0, 5.0))
    assert pneu.input.shape == (1, 28, 28) and pneu.temperature == pytest.approx(1.1171293225399048)
    assert pneu.cam_layer == "layer3" and pneu.dataset_key == "pneumoniamnist" and not pneu.from_folder
    assert pneu.references[0]["method"] == "ResNet-18 (28)" and pneu.test_metrics["n"] == 624
    breast = get_spec("breast_resnet")
    assert breast.arch.is_ensemble and len(breast.arch.members) == 5 and len(breast.shards) == 2
    assert breast.loss.label_smoothing == 0.1 and breast.provenance["members_note"].startswith("for S in")
    recon, denoise = get_spec("lgg_flair_recon"), get_spec("lgg_flair_denoise")
    assert (recon.mode, recon.cascades, recon.crop, recon.accelerations) == ("recon", 3, (64, 256), (4.0, 4.0, 4.0, 8.0))
    assert recon.data_consistency and recon.noise is None and recon.input.size == (256, 256)
    assert (denoise.mode, denoise.cascades, denoise.noise.max_sigma) == ("denoise", 1, 0.12)
    assert recon.training["monitor"] == "val_psnr"


def test_defaults_live_in_the_spec():
    seg = parse_spec(_minimal("segmentation"))
    assert (seg.threshold, seg.min_size, seg.tta, seg.layout, seg.label_value, seg.data) == (0.5, 0, "none", "lgg",
                                                                                             None, None)
    assert seg.classes == ("background", "foreground") and seg.modality is None and seg.in_channels == 1
    assert seg.cam_layer == DEFAULT_SEG_CAM_LAYER
    no_channels = parse_spec(_minimal("segmentation", arch={"name": "UNet", "kwargs": {}}))
    assert no_channels.in_channels == 3
    cls = parse_spec(_minimal("classification"))
    assert cls.temperature == 1.0 and cls.input.modality == "OT" and cls.input.label == "OT"
    assert cls.input.intensity_range == (0, 255) and cls.input.aspect == 1.0 and cls.input.training_size == 28
    assert (cls.loss.class_weights, cls.loss.label_smoothing) == ("balanced", 0.0) and cls.from_folder
    assert cls.references == [] and cls.test_metrics == {}
    rec = parse_spec(_minimal("reconstruction"))
    assert (rec.mode, rec.cascades, rec.crop, rec.accelerations, rec.noise) == ("recon", 1, None, (), None)
    assert rec.input.size == (256, 256) and rec.residual and rec.training == {}


def test_specs_are_read_only():
    spec = get_spec("lgg_unet")
    with pytest.raises(dataclasses.FrozenInstanceError):
        spec.threshold = 0.9  # type: ignore[misc]
    with pytest.raises(TypeError):
        spec.provenance["dtype"] = "float32"  # type: ignore[index]
    raw = _shipped("lgg_unet")
    parsed = parse_spec(raw)
    raw["arch"]["kwargs"]["in_channels"] = 1  # the spec holds its own copy
    assert parsed.in_channels == 3


@pytest.mark.parametrize("task,key", [("classification", "treshold"), ("segmentation", "treshold"),
                                      ("reconstruction", "casades"), ("segmentation", "temperature"),
                                      ("reconstruction", "tta")])
def test_unknown_key_names_the_model_and_the_key(task, key):
    with pytest.raises(RegistryError, match=rf"'m'.*unknown key '{key}'"):
        parse_spec(_minimal(task, **{key: 1}))


@pytest.mark.parametrize("name,where,key", [("pneumonia_resnet", "input", "colour"), ("lgg_unet", "input", "spacing"),
                                            ("lgg_flair_denoise", "noise", "mean")])
def test_unknown_nested_key_names_its_path(name, where, key):
    entry = _shipped(name)
    entry[where][key] = 1
    with pytest.raises(RegistryError, match=rf"'{name}'.*unknown key '{where}\.{key}'"):
        parse_spec(entry)


@pytest.mark.parametrize("task,drop", [("classification", "classes"), ("classification", "cam_layer"),
                                       ("classification", "input"), ("segmentation", "arch"),
                                       ("reconstruction", "file")])
def test_missing_required_key_names_the_model_and_the_key(task, drop):
    entry = _minimal(task)
    del entry[drop]
    with pytest.raises(RegistryError, match=rf"'m'.*missing required key '{drop}'"):
        parse_spec(entry)


def test_missing_nested_key_and_bad_values_are_named():
    entry = _shipped("retina_resnet")
    del entry["input"]["size"]
    with pytest.raises(RegistryError, match=r"'retina_resnet'.*missing required key 'input\.size'"):
        parse_spec(entry)
    with pytest.raises(RegistryError, match=r"'m'.*'threshold' must be a number"):
        parse_spec(_minimal("segmentation", threshold="high"))
    with pytest.raises(RegistryError, match=r"'m'.*'cascades' must be an integer"):
        parse_spec(_minimal("reconstruction", cascades=2.5))
    with pytest.raises(RegistryError, match=r"'m'.*'mode' must be one of"):
        parse_spec(_minimal("reconstruction", mode="superres"))
    with pytest.raises(RegistryError, match=r"'m'.*unknown task 'detection'"):
        parse_spec(_minimal("detection"))
    with pytest.raises(RegistryError, match=r"task 'segmentation' is not 'classification'"):
        ClassifierSpec.from_entry(_minimal("segmentation"))


def test_registry_parses_each_entry_once_and_refuses_bad_entries(tmp_path):
    import json

    upsert_entry(_minimal("segmentation", name="good", sha256="0", threshold=0.7), tmp_path)
    entries = {e.name: e for e in list_models(weights_dir=tmp_path)}
    assert entries["good"].spec.threshold == 0.7 and get_spec("good", tmp_path) == entries["good"].spec
    assert list_models(weights_dir=tmp_path)[0].spec is entries["good"].spec  # parsed once per manifest version
    with pytest.raises(RegistryError, match=r"'typo'.*unknown key 'treshold'"):  # a writer never writes it
        upsert_entry(_minimal("segmentation", name="typo", sha256="0", treshold=0.7), tmp_path)
    data = json.loads((tmp_path / "manifest.json").read_text())  # a hand-edited manifest fails on reading
    data["models"].append(_minimal("segmentation", name="typo", sha256="0", treshold=0.7))
    (tmp_path / "manifest.json").write_text(json.dumps(data))
    with pytest.raises(RegistryError, match=r"'typo'.*unknown key 'treshold'"):
        list_models(weights_dir=tmp_path)
    del data["models"][-1]["task"]
    (tmp_path / "manifest.json").write_text(json.dumps(data))
    with pytest.raises(RegistryError, match=r"'typo'.*missing required key 'task'"):
        list_models(weights_dir=tmp_path)
