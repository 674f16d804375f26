"""The targets of the training loss: per-member terms with weights, the clean-crop target of a view
(tolerant and tough teachers), their gradients, and the errors a user gets before any work starts."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from wav2small import Student
from wav2small.cli import main
from wav2small.store import LabelStore
from wav2small.testing import write_label_store
from wav2small.train import TrainConfig, clean_rows, loss_targets, train, weighted_distillation_loss

LABELS = ["arousal", "dominance", "valence"]


@pytest.fixture(scope="module")
def two_teacher_store(tmp_path_factory):
    """12 clips of 0.5-0.8 s labelled by a tiny Dawn and a tiny Odyssey (members 'dawn', 'odyssey'), one view each."""
    torch.set_num_threads(1)
    return write_label_store(tmp_path_factory.mktemp("two"), 12, (0.5, 0.8), crop_dur=0.5, views=1, kinds=("dawn", "odyssey"))


def _gradient(weights, targets, ccc_weight=0.5):
    torch.manual_seed(0)
    model = torch.nn.Linear(8, 3)
    x = torch.randn(6, 8, generator=torch.Generator().manual_seed(1))
    loss, _ = weighted_distillation_loss(model(x), targets, weights, ccc_weight)
    loss.backward()
    return torch.cat([p.grad.flatten() for p in model.parameters()])


def test_the_weighted_loss_has_the_weighted_sum_of_the_members_gradients():
    targets = torch.rand(6, 2, 3, generator=torch.Generator().manual_seed(2))  # (B, members, 3)
    dawn, odyssey = _gradient([1.0, 0.0], targets), _gradient([0.0, 1.0], targets)
    assert not torch.allclose(dawn, odyssey)
    torch.testing.assert_close(_gradient([0.7, 0.3], targets), 0.7 * dawn + 0.3 * odyssey, rtol=1e-5, atol=1e-7)

    # weight 0: that member's targets have no influence, even when they are not numbers
    moved = targets.clone()
    moved[:, 1] = float("nan")
    assert torch.equal(_gradient([1.0, 0.0], moved), dawn)
    # a positive weight: they do
    moved[:, 1] = targets[:, 1] + 0.3
    assert not torch.allclose(_gradient([0.5, 0.5], moved), _gradient([0.5, 0.5], targets))


def test_loss_targets_per_member_and_clean_crop(two_teacher_store):
    frame = LabelStore(two_teacher_store).read()
    members = ["dawn", "odyssey"]
    config = TrainConfig(store="s", out="o")
    y, weights, names = loss_targets(frame, config, members)
    assert y.shape == (len(frame), 1, 3) and weights == [1.0] and np.array_equal(y[:, 0], frame[LABELS].to_numpy(np.float32))

    config = TrainConfig(store="s", out="o", member_weights={"dawn": 1, "odyssey": 3})
    y, weights, names = loss_targets(frame, config, members)
    assert weights == [0.25, 0.75] and names == members
    assert np.array_equal(y[:, 1], frame[[f"odyssey.{k}" for k in LABELS]].to_numpy(np.float32))

    config = TrainConfig(store="s", out="o", member_weights={"dawn": 1, "odyssey": 3}, clean_target_weight=0.4)
    y, weights, names = loss_targets(frame, config, members)
    assert y.shape == (len(frame), 4, 3) and weights == pytest.approx([0.15, 0.45, 0.1, 0.3])
    for i, row in enumerate(frame.itertuples()):
        clean = frame[(frame["file"] == row.file) & (frame["start"] == row.start) & (frame["view"] == 0)]
        assert np.array_equal(y[i, 2], clean[[f"dawn.{k}" for k in LABELS]].to_numpy(np.float32)[0])
        assert np.array_equal(y[i, 0], frame[[f"dawn.{k}" for k in LABELS]].to_numpy(np.float32)[i])
    augmented = frame["view"].to_numpy() > 0
    assert augmented.any() and not np.allclose(y[augmented, 0], y[augmented, 2])  # the view is not its clean crop

    with pytest.raises(ValueError, match="'wavlm'.*teachers of this label store are \\['dawn', 'odyssey'\\]"):
        loss_targets(frame, TrainConfig(store="s", out="o", member_weights={"wavlm": 1}), members, "s")
    with pytest.raises(ValueError, match="2 clips have no clean-crop"):
        clean_rows(frame[~frame["file"].isin(frame["file"].unique()[:2]) | (frame["view"] > 0)].reset_index(drop=True))


@pytest.mark.parametrize("options", [dict(member_weights={"dawn": -1}), dict(member_weights={"dawn": 0}),
                                     dict(member_weights={"dawn": 1}, target="odyssey"), dict(clean_target_weight=1.5)])
def test_bad_settings_are_refused_at_once(options):
    with pytest.raises(ValueError):
        TrainConfig(store="s", out="o", **options)


def _config(store, out, **options):
    return TrainConfig(store=str(store), out=str(out), student_options={"channels": 4}, batch_size=4, steps=6, warmup_steps=1,
                       valid_fraction=0.25, workers=0, threads=1, progress=False, **options)


def test_weight_zero_on_a_member_trains_on_the_other_alone(two_teacher_store, tmp_path):
    train(_config(two_teacher_store, tmp_path / "alone", target="odyssey"))
    train(_config(two_teacher_store, tmp_path / "weighted", member_weights={"dawn": 0, "odyssey": 2}))
    a = Student.from_pretrained(tmp_path / "alone" / "last").state_dict()
    b = Student.from_pretrained(tmp_path / "weighted" / "last").state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    train(_config(two_teacher_store, tmp_path / "both", member_weights={"dawn": 1, "odyssey": 1}, clean_target_weight=0.5))
    c = Student.from_pretrained(tmp_path / "both" / "last").state_dict()
    assert not all(torch.equal(a[k], c[k]) for k in a)


def test_errors_come_before_any_work(two_teacher_store, tmp_path, capsys):
    out = tmp_path / "run"
    command = [str(two_teacher_store), "--out", str(out), "--cache-dir", str(tmp_path / "cache"), "--steps", "2", "--quiet"]
    assert main(["train", *command, "--member-weight", "wavlm=1"]) == 2
    assert "teachers of this label store are ['dawn', 'odyssey']" in capsys.readouterr().err
    no_clean = tmp_path / "no-clean"
    store = LabelStore(two_teacher_store)
    LabelStore(no_clean).create(store.metadata)
    LabelStore(no_clean).write_shard("labels", 0, store.read().query("view > 0").reset_index(drop=True))
    assert main(["train", str(no_clean), *command[1:], "--clean-target-weight", "0.5"]) == 2
    assert "no clean-crop (view 0) labels" in capsys.readouterr().err
    assert not (tmp_path / "cache").exists() and not (out / "state").exists()
