"""Dice agrees with MONAI's DiceMetric; measurements use the spacing; LGG reader rules."""

from __future__ import annotations

import numpy as np
import pytest

from medviz.segmentation.measure import confusion_map, dice_score, label_measurements


@pytest.mark.parametrize("p_fg", [0.0, 0.05, 0.3])
def test_dice_agrees_with_monai(rng: np.random.Generator, p_fg: float) -> None:
    import torch
    from monai.metrics import DiceMetric

    for _ in range(5):
        pred = rng.random((6, 20, 24)) < p_fg
        truth = rng.random((6, 20, 24)) < 0.2
        metric = DiceMetric(include_background=True, reduction="none", ignore_empty=False)
        ref = metric(torch.from_numpy(pred[None, None]).float(), torch.from_numpy(truth[None, None]).float())
        assert dice_score(pred, truth) == pytest.approx(float(ref.item()), abs=1e-6)


def test_dice_edge_cases() -> None:
    z = np.zeros((3, 4, 4), bool)
    one = z.copy()
    one[1, 1, 1] = True
    assert dice_score(z, z) == 1.0
    assert dice_score(one, z) == 0.0
    assert dice_score(one, one) == 1.0
    with pytest.raises(ValueError):
        dice_score(z, z[0])


def test_measurements_use_spacing() -> None:
    m = np.zeros((4, 10, 10), np.uint8)
    m[1:3, 2:6, 2:7] = 1  # 2 slices x 20 px
    m[3, 0, 0] = 2
    rows = label_measurements(m, (2.0, 0.5, 0.25), slice_index=1)
    r1 = next(r for r in rows if r["label"] == 1)
    assert r1["voxels"] == 40
    assert r1["volume_ml"] == pytest.approx(40 * 2.0 * 0.5 * 0.25 / 1000)
    assert r1["area_mm2"] == pytest.approx(20 * 0.5 * 0.25)
    assert r1["slice (1-based)"] == 2  # slice_index 1 is the second slice
    assert [r["label"] for r in rows] == [1, 2]


def test_confusion_map() -> None:
    p = np.array([1, 1, 0, 0])
    t = np.array([1, 0, 1, 0])
    assert confusion_map(p, t).tolist() == [1, 2, 3, 0]


def test_lgg_reader_sorts_by_integer_slice(tmp_path) -> None:
    from PIL import Image

    from medviz.datasets.lgg import DataLayoutError, cases, load_case, read_pairs

    (tmp_path / "images").mkdir()
    (tmp_path / "masks").mkdir()
    lines = ["case_id,slice,image,mask"]
    for s in (10, 2, 1):  # name order would put 10 before 2
        Image.fromarray(np.full((4, 4, 3), s, np.uint8)).save(tmp_path / f"images/c_{s}.png")
        Image.fromarray(np.full((4, 4), 255 if s == 2 else 0, np.uint8)).save(tmp_path / f"masks/c_{s}.png")
        lines.append(f"c,{s},images/c_{s}.png,masks/c_{s}.png")
    (tmp_path / "pairs.csv").write_text("\n".join(lines))
    assert [p.slice for p in read_pairs(tmp_path)] == [1, 2, 10]
    assert cases(tmp_path, "test") == ["c"]  # no splits.json: every case
    image, mask = load_case(tmp_path, "c")
    assert image[:, 0, 0, 0].tolist() == [1, 2, 10]
    assert mask.max(axis=(1, 2)).tolist() == [0, 1, 0]
    (tmp_path / "pairs.csv").write_text("case_id,image,mask\nc,a,b\n")
    with pytest.raises(DataLayoutError, match="slice"):
        read_pairs(tmp_path)
