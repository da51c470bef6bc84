"""The deep ensemble of GRUs: its probability is the members' mean, padding stays out of it, each member is
trained on its own loss; and a replaced model's test look is carried into its successor's card."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from medviz.config import get_settings
from medviz.models.recurrent import GRUEnsemble, SequenceModel
from medviz.models.registry import upsert_entry
from medviz.models.specs import SequenceSpec
from medviz.sequence.card import render_card
from medviz.sequence.train import (
    SequenceTask,
    _per_slice_fit,
    _standardisation,
    earlier_test_looks,
    out_of_fold_logits,
)


def _features(n: int, f: int = 6, seed: int = 0) -> torch.Tensor:
    return torch.from_numpy(np.random.default_rng(seed).normal(size=(n, f)).astype(np.float32))


def test_the_ensemble_probability_is_the_mean_of_its_members():
    torch.manual_seed(0)
    net = GRUEnsemble(6, members=3, hidden=5, proj=7, dropout=0.0).eval()
    x = _features(9)[None]
    with torch.no_grad():
        members = [torch.sigmoid(m(x, torch.tensor([9]))) for m in net.members]
        assert not torch.allclose(members[0], members[1])  # initialised on their own
        torch.testing.assert_close(torch.sigmoid(net(x, torch.tensor([9]))), torch.stack(members).mean(0),
                                   rtol=1e-5, atol=1e-6)


def test_padding_does_not_change_the_ensembles_unpadded_part():
    torch.manual_seed(0)
    net = GRUEnsemble(6, members=2, hidden=5, proj=7, dropout=0.0).eval()
    x = _features(9)
    with torch.no_grad():
        alone = net(x[None], torch.tensor([9]))[0]
        out = net(torch.cat([x, torch.full((5, 6), 99.0)])[None], torch.tensor([9]))[0]
    torch.testing.assert_close(out[:9], alone, rtol=1e-5, atol=1e-6)
    assert torch.all(out[9:] == 0)


def test_an_ensemble_needs_two_members_and_one_member_is_the_plain_gru():
    with pytest.raises(ValueError, match="at least 2"):
        GRUEnsemble(6, members=1)
    assert {k.split(".")[1] for k in SequenceModel(6, members=1).state_dict() if k.startswith("gru.")} != {"members"}
    assert {k.split(".")[1] for k in SequenceModel(6, members=2).state_dict() if k.startswith("gru.")} == {"members"}


def test_each_member_is_trained_on_its_own_loss():
    torch.manual_seed(0)
    model = SequenceModel(6, hidden=4, proj=5, dropout=0.0, members=3)
    model.gru.fit_standardise(_features(50))
    task = SequenceTask(SequenceTask.Options(feature_noise=0.0))
    labels = torch.tensor([[0, 0, 1, 1, 0, 0, 0]], dtype=torch.float32)
    batch = {"features": _features(7)[None], "length": torch.tensor([7]), "labels": labels,
             "mask": torch.ones(1, 7)}
    loss = task.training_loss(model, batch)
    each = [torch.nn.functional.binary_cross_entropy_with_logits(m(batch["features"], batch["length"])[0], labels[0])
            for m in model.gru.members]
    torch.testing.assert_close(loss, torch.stack(each).mean())
    loss.backward()
    for m in model.gru.members:
        assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in m.gru.parameters())
    assert all(torch.equal(m.standardise.mean, model.gru.standardise.mean) for m in model.gru.members)


def _shipped_sequence_entry() -> dict:
    models = json.loads((get_settings().weights_dir / "manifest.json").read_text())["models"]
    return next(m for m in models if m["task"] == "sequence" and (m.get("metrics") or {}).get("test"))


def test_a_replaced_models_test_look_is_carried_into_the_new_card(tmp_path: Path):
    assert earlier_test_looks(tmp_path, "lgg_slice_gru") == []  # nothing registered there
    old = _shipped_sequence_entry()
    upsert_entry(old, tmp_path)
    looks = earlier_test_looks(tmp_path, old["name"])
    carried = list(old.get("earlier_tests", []))  # the looks the shipped entry already carries, oldest first
    assert looks[:-1] == carried and len(looks) == len(carried) + 1
    assert looks[-1]["auprc"] == old["metrics"]["test"]["auprc"] and looks[-1]["sha256"] == old["sha256"]
    assert looks[-1]["bar_met"] is (old["metrics"]["test"]["auprc"] > max(
        b["auprc"] for b in old["metrics"]["test"]["baselines"].values()) and old["metrics"]["test"]["log_loss"]
        <= old["metrics"]["test"]["baselines"]["per_slice_smoothed"]["log_loss"])
    new = {**old, "earlier_tests": looks, "arch": {**old["arch"], "kwargs": {**old["arch"]["kwargs"], "members": 5}}}
    card = render_card(SequenceSpec.from_entry(new), {"train": 49, "val": 10, "test": 6})
    assert "Earlier test looks" in card and f"test look {len(looks) + 1}" in card and "Deep ensemble of 5" in card
    assert all(f"{t['auprc']:.4f}" in card for t in looks)
    upsert_entry(new, tmp_path)  # the next export keeps every earlier look, oldest first
    again = earlier_test_looks(tmp_path, old["name"])
    assert again[:-1] == looks and again[-1]["sha256"] == old["sha256"]


# ---- stacked inputs ------------------------------------------------------------------------------


def _stacks(n: int, seed: int = 0) -> tuple[list[np.ndarray], list[np.ndarray]]:
    rng = np.random.default_rng(seed)
    ys = [(np.arange(12) % 5 < 2).astype(np.uint8) for _ in range(n)]
    fs = [(rng.normal(size=(12, 6)) + 1.5 * y[:, None]).astype(np.float32) for y in ys]
    return fs, ys


def test_out_of_fold_logits_come_from_fits_that_never_saw_the_stack():
    from sklearn.linear_model import LogisticRegression

    fs, ys = _stacks(7)
    mean, std = _standardisation(np.concatenate(fs))
    oof = out_of_fold_logits(fs, ys, 0.1, mean, std, folds=3)
    assert [len(o) for o in oof] == [12] * 7
    z = [(f - mean) / std for f in fs]
    rest = [i for i in range(7) if i % 3 != 1]  # stacks 1 and 4 are held out together
    fit = LogisticRegression(C=0.1, max_iter=5000).fit(np.concatenate([z[i] for i in rest]),
                                                       np.concatenate([ys[i] for i in rest]))
    for i in (1, 4):
        np.testing.assert_allclose(oof[i], fit.decision_function(z[i]), rtol=1e-4, atol=1e-4)
    seen = LogisticRegression(C=0.1, max_iter=5000).fit(np.concatenate(z), np.concatenate(ys))
    assert not np.allclose(oof[1], seen.decision_function(z[1]), atol=1e-3)  # not the fit that saw it


def test_a_stacked_model_reads_the_per_slice_logit_and_the_context_features():
    torch.manual_seed(0)
    m = SequenceModel(6, hidden=4, proj=5, dropout=0.0, inputs="stacked", context_features=(4, 5)).eval()
    x = _features(8)[None]
    with torch.no_grad():
        s = m.stacked_inputs(x)
        torch.testing.assert_close(s[..., 0], m.per_slice(x))
        torch.testing.assert_close(s[..., 1:], x[..., 4:])
        torch.testing.assert_close(m(x, torch.tensor([8])), m.gru(s, torch.tensor([8])))
        given = torch.arange(8.0)[None]
        torch.testing.assert_close(m.stacked_inputs(x, given)[..., 0], given)
    assert m.gru.standardise.mean.shape == (3,)
    with pytest.raises(ValueError, match="inputs must be one of"):
        SequenceModel(6, inputs="pixels")


def test_a_stacked_model_keeps_its_fitted_head_through_optimiser_steps():
    """build_model freezes the fitted head; AdamW steps with weight decay move the GRU, never the head."""
    fs, ys = _stacks(6)
    task = SequenceTask(SequenceTask.Options(inputs="stacked", feature_noise=0.1, hidden=4, proj=5, dropout=0.0))
    task._train_features, task.n_features = np.concatenate(fs[:4]), 6
    task._head = _per_slice_fit(fs[:4], ys[:4], fs[4:], ys[4:])
    task._oof = out_of_fold_logits(fs[:4], ys[:4], task._head.c, task._head.mean, task._head.std, folds=2)
    model = task.build_model()
    assert not any(p.requires_grad for p in model.per_slice.parameters())
    with torch.no_grad():  # the head in the model is the fit, standardisation included
        z = (torch.from_numpy(fs[4]) - torch.from_numpy(task._head.mean).float()) / torch.from_numpy(task._head.std).float()
        expected = z @ torch.from_numpy(task._head.coef).float() + task._head.intercept
        torch.testing.assert_close(model.per_slice(torch.from_numpy(fs[4])), expected, rtol=1e-4, atol=1e-4)
    head = {k: v.clone() for k, v in model.per_slice.state_dict().items()}
    gru = {k: v.clone() for k, v in model.gru.state_dict().items()}
    opt = torch.optim.AdamW(model.parameters(), lr=0.01, weight_decay=0.5)
    batch = {"features": torch.from_numpy(np.stack(fs[:2])), "length": torch.tensor([12, 12]),
             "labels": torch.from_numpy(np.stack(ys[:2]).astype(np.float32)), "mask": torch.ones(2, 12),
             "per_slice_logits": torch.from_numpy(np.stack(task._oof[:2]))}
    for _ in range(3):
        opt.zero_grad()
        task.training_loss(model, batch).backward()
        opt.step()
    assert all(torch.equal(head[k], v) for k, v in model.per_slice.state_dict().items())
    assert not all(torch.equal(gru[k], v) for k, v in model.gru.state_dict().items())
