"""The one resolver of model specs, the runners and the equal-length batcher."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from wav2small import create_student, export_onnx
from wav2small.runners import (EqualLengthBatcher, ModelSpec, OnnxRunner, TorchRunner, load_model, load_student,
                               resolve_model, run_clips)
from wav2small.teachers import OdysseyTeacher, load_teacher
from wav2small.testing import save_tiny_teacher, synth_speech


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("models")
    torch.manual_seed(0)
    student = create_student("wav2small", channels=4)
    export_onnx(student, root / "export", checks=((1, 1.0),))
    return {"student": student.save_pretrained(root / "student"), "teacher": save_tiny_teacher(root / "teacher", "dawn"),
            "export": root / "export", "object": student}


def test_every_kind_of_spec_resolves_to_what_it_names(folders):
    student = folders["object"]
    runner = TorchRunner(student)
    assert resolve_model(runner).kind == "runner" and load_model(runner) is runner
    assert resolve_model(student).kind == "module"
    assert resolve_model(str(folders["student"])).kind == "student"
    assert resolve_model(str(folders["teacher"])).kind == "teacher"
    assert resolve_model(folders["export"]).kind == "onnx"
    assert resolve_model(folders["export"] / "model.onnx").kind == "onnx"
    assert resolve_model("wav2small-72k").kind == "preset"
    assert resolve_model("dawn").kind == resolve_model("dawn+odyssey").kind == resolve_model(["a", "b"]).kind == "teacher"
    assert isinstance(load_model(folders["export"]), OnnxRunner) and isinstance(load_model(folders["student"]), TorchRunner)
    assert load_model(str(folders["teacher"])).module.name == "teacher"


def test_a_model_folder_wins_over_a_preset_name_or_an_alias(folders, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "wav2small" / "models").mkdir(parents=True)  # a folder that holds no model (the package's source, say)
    (tmp_path / "odyssey").mkdir()
    assert resolve_model("wav2small") == ModelSpec("preset", "wav2small")
    assert resolve_model("odyssey") == ModelSpec("teacher", "odyssey")  # the alias
    (tmp_path / "wav2small" / "models").rmdir()
    (tmp_path / "wav2small").rmdir()
    create_student("wav2small", channels=5).save_pretrained(tmp_path / "wav2small")  # a folder named like the preset
    save_tiny_teacher(tmp_path / "dawn", "odyssey")  # a folder named like the alias, holding another kind of teacher
    assert resolve_model("wav2small").kind == "student"
    model, source = load_student("wav2small")
    assert model.config.channels == 5 and source == "wav2small"
    assert load_model("wav2small").module.config.channels == 5
    assert resolve_model("dawn").kind == "teacher"
    assert isinstance(load_teacher("dawn"), OdysseyTeacher)  # the folder, not the hub's Dawn


def test_presets_are_students_to_build_not_models_to_run(folders):
    model, source = load_student("wav2small", options={"channels": 6})
    assert model.config.channels == 6 and "untrained" in source
    with pytest.raises(ValueError, match="untrained"):
        load_model("wav2small-72k")
    with pytest.raises(ValueError, match="preset name, not to a model folder"):
        load_student(str(folders["student"]), options={"channels": 6})
    with pytest.raises(ValueError, match="student is needed"):
        load_student(str(folders["teacher"]))
    with pytest.raises(OSError, match="no such model folder"):
        resolve_model("./not/there")


def test_batches_hold_clips_of_one_length_and_results_keep_their_order():
    seen = []

    def runner(batch):
        seen.append(batch.shape)
        return np.repeat(batch[:, :1], 3, axis=1) * 0 + batch.shape[1]  # each clip's own length

    clips = [synth_speech(seconds, i) for i, seconds in enumerate([0.5, 0.25, 0.5, 0.5, 0.25])]
    out = run_clips(runner, clips, batch_size=2)
    assert out[:, 0].tolist() == [len(c) for c in clips]
    assert seen == [(1, 8000), (1, 4000), (2, 8000), (1, 4000)]  # never two lengths in one batch, at most 2 clips
    batcher = EqualLengthBatcher(runner, 8)
    batcher.add("a", clips[0])
    assert batcher.results == {}  # waits for a batch to fill
    batcher.flush()
    assert batcher.results["a"].tolist() == [8000] * 3
