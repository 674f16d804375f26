"""Every bad input through every surface: one clear error naming the file, and, for batch commands,
everything else processed.

Bad audio: truncated files of every format the loader reads, empty, not audio, a header claiming
1 Hz, a symlink loop, a dangling link, NaN samples, samples of 1e20, too short, and a file the OS
refuses to read. Bad model folders: sizes too large, negative or zero, of the wrong type, weights
of the wrong shape, a malformed safetensors file, a config.json that is not JSON. Bad data files:
store rows with implausible sizes or pointing outside the store's folders, manifests with end=inf.
Bad arguments: win_dur of 1e-4 or NaN, a list mixing paths and arrays, a bfloat16 tensor.
Surfaces: load_audio, predict (API and CLI), prepare, label, evaluate, train, export.
"""

from __future__ import annotations

import builtins
import json
import shutil

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
import torch

from wav2small import AudioError, Wav2Small, load_audio, predict
from wav2small.cli import main
from wav2small.export import calibration_clips
from wav2small.labels import label_audio
from wav2small.store import LabelStore
from wav2small.testing import save_tiny_teacher, synth_speech, write_bad_audio
from wav2small.train import TrainConfig, train

GOOD = [f"good{i}.wav" for i in range(4)]
LOCKED = "locked.wav"  # readable by root, so the test plays the OS refusing it


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("bad")
    audio = root / "audio"
    bad = write_bad_audio(audio)
    for i, name in enumerate([*GOOD, LOCKED]):
        sf.write(audio / name, synth_speech(1.2, seed=10 + i), 16000, subtype="PCM_16")
    torch.manual_seed(0)
    model = Wav2Small(channels=4).eval().save_pretrained(root / "model")
    models = _bad_models(root / "models", model)
    return {"root": root, "audio": audio, "bad": {**bad, LOCKED: "permission denied"}, "model": model,
            "teacher": save_tiny_teacher(root / "teacher", "dawn"), "models": models}


def _bad_models(folder, good):
    """Model folders that must be refused before anything is built: {name: (folder, words of the error)}."""
    config = json.loads((good / "config.json").read_text())
    cases = {"channels_100000": ({"channels": 100000}, "plausible range"), "channels_negative": ({"channels": -3}, "plausible range"),
             "channels_zero": ({"channels": 0}, "plausible range"), "channels_text": ({"channels": "4"}, "channels must be int"),
             "n_fft_float": ({"n_fft": 64.5}, "n_fft must be int"), "wrong_shapes": ({"channels": 5}, "do not fit config.json")}
    made = {}
    for name, (change, words) in cases.items():
        shutil.copytree(good, folder / name)
        (folder / name / "config.json").write_text(json.dumps({**config, **change}))
        made[name] = (folder / name, words)
    shutil.copytree(good, folder / "malformed_weights")
    (folder / "malformed_weights" / "model.safetensors").write_bytes(b"\xff" * 64)
    made["malformed_weights"] = (folder / "malformed_weights", "not a readable safetensors file")
    shutil.copytree(good, folder / "config_not_json")
    (folder / "config_not_json" / "config.json").write_text('{"channels": 4,')
    made["config_not_json"] = (folder / "config_not_json", "not valid JSON")
    return made


@pytest.fixture
def refused(monkeypatch, world):
    """The OS refuses to open locked.wav (what a user without read permission meets; root never does)."""
    real_open = builtins.open

    def open_(file, *args, **kwargs):
        if str(file).endswith(LOCKED):
            raise PermissionError(13, "Permission denied", str(file))
        return real_open(file, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", open_)


def _files(world, names=None):
    return [str(world["audio"] / name) for name in (names or [*GOOD, *world["bad"]])]


def _one_line_error(capsys, command: str, *names) -> str:
    err = capsys.readouterr().err.strip()
    assert "Traceback" not in err, err
    last = err.splitlines()[-1]
    assert last.startswith(f"wav2small {command}: error: "), err
    for name in names:
        assert str(name) in last, last
    return last


# audio files


def test_load_audio(world, refused):
    for name, words in world["bad"].items():
        with pytest.raises(AudioError) as info:
            load_audio(world["audio"] / name)
        assert info.value.source == str(world["audio"] / name) and words in info.value.problem, str(info.value)


def test_predict_api(world, refused):
    with pytest.warns(UserWarning) as warned:  # on_error="skip" warns about each file it leaves out
        frame = predict(_files(world), model=world["model"], on_error="skip")
    assert sorted(str(w.message).split(": ")[0] for w in warned) == sorted(_files(world, world["bad"]))
    assert sorted(frame.index.get_level_values("file")) == _files(world, GOOD)
    failed = frame.attrs["failed"]
    assert sorted(failed) == sorted(_files(world, world["bad"]))
    assert all(words in failed[str(world["audio"] / name)] for name, words in world["bad"].items())
    for name in world["bad"]:
        with pytest.raises(AudioError, match=name):
            predict(str(world["audio"] / name), model=world["model"])


def test_predict_cli(world, refused, tmp_path, capsys):
    assert main(["predict", *_files(world), "--model", str(world["model"]), "--output", str(tmp_path / "adv.csv")]) == 0
    err = capsys.readouterr().err
    for name, words in world["bad"].items():
        assert f"skipped {world['audio'] / name}: " in err and words in err.split(f"skipped {world['audio'] / name}: ")[1].splitlines()[0]
    assert sorted(pd.read_csv(tmp_path / "adv.csv")["file"]) == _files(world, GOOD)


def test_label(world, refused, tmp_path):
    summary = label_audio(world["audio"], world["teacher"], tmp_path / "store", crop_dur=1.0, views=1, progress=False)
    store = LabelStore(tmp_path / "store")
    errors = dict(zip(store.errors()["file"], store.errors()["reason"]))
    assert sorted(errors) == sorted(_files(world, world["bad"]))
    assert all(words in errors[str(world["audio"] / name)] for name, words in world["bad"].items())
    assert sorted(store.read()["file"].unique()) == _files(world, GOOD) and summary["clips"] >= len(GOOD)


def test_label_manifest_rows(world, tmp_path):
    good = _files(world, GOOD)
    pd.DataFrame({"file": [*good, good[0], good[1], str(world["audio"] / "truncated.ogg")],
                  "start": [0.0] * 4 + [0.2, -1.0, 0.0], "end": [np.nan] * 4 + [np.inf, 0.5, 0.5]}).to_csv(tmp_path / "m.csv", index=False)
    label_audio(tmp_path / "m.csv", world["teacher"], tmp_path / "store", crop_dur=1.0, progress=False)
    store = LabelStore(tmp_path / "store")
    reasons = store.errors().groupby("file")["reason"].apply(" | ".join)
    assert "finite" in reasons[good[0]] and "finite" in reasons[good[1]] and "truncated" in reasons[str(world["audio"] / "truncated.ogg")]
    assert sorted(store.read()["file"].unique()) == good


def test_prepare(world, refused, tmp_path):
    from wav2small.prepare import write_manifests

    tables = write_manifests(world["audio"], tmp_path / "manifests", progress=False)
    errors = dict(zip(tables["errors"]["file"], tables["errors"]["reason"]))
    in_samples = {"nan.wav", "loud.wav", "short.wav"}  # whole headers: their samples are judged when read (label)
    assert sorted(errors) == sorted(_files(world, [name for name in world["bad"] if name not in in_samples]))
    assert all(words in errors[file] for file, words in zip(_files(world, world["bad"]), world["bad"].values()) if file in errors)
    listed = [*tables["train"]["file"], *tables["test"]["file"]]
    assert sorted(listed) == sorted(_files(world, [*GOOD, *in_samples]))


def test_evaluate_cli(world, refused, tmp_path, capsys):
    files = _files(world)
    rng = np.random.default_rng(0)
    table = pd.DataFrame({"file": files, **{dim: rng.uniform(0, 1, len(files)) for dim in ("arousal", "dominance", "valence")}})
    table.to_csv(tmp_path / "corpus.csv", index=False)
    assert main(["evaluate", str(tmp_path / "corpus.csv"), "--model", str(world["model"]), "-o", str(tmp_path / "eval"),
                 "--bootstrap", "0"]) == 0
    report = json.loads((tmp_path / "eval" / "report.json").read_text())
    unreadable = {entry["file"]: entry["reason"] for entry in report["unreadable"]}
    unreadable.update({file: "file not found" for file in report["missing"]})  # the dangling link: counted as missing
    assert report["missing"] == _files(world, ["dangling.wav"])
    assert sorted(unreadable) == sorted(_files(world, world["bad"]))
    assert all(words in unreadable[str(world["audio"] / name)] for name, words in world["bad"].items())
    assert report["counts"]["n_evaluated"] == len(GOOD)


def test_export_calibration(world, refused):
    calibration, held, info = calibration_clips(world["audio"], clip_seconds=0.1, holdout=0.5)
    assert sorted(info["skipped"]) == sorted(_files(world, world["bad"]))
    assert all(words in info["skipped"][str(world["audio"] / name)] for name, words in world["bad"].items())
    assert len(calibration) and len(held) >= 8


# label store rows and audio gone bad after labelling, in training


def test_train(world, tmp_path, capsys):
    audio = tmp_path / "audio"
    audio.mkdir()
    for name in GOOD:
        shutil.copy(world["audio"] / name, audio / name)
    store = tmp_path / "store"
    label_audio(audio, world["teacher"], store, crop_dur=0.6, views=1, progress=False)
    good = json.loads(LabelStore(store).read()["params"][0])
    outside = str(world["audio"] / GOOD[0])  # a readable file, but not one the store was labelled from
    rows = pd.DataFrame([{**{k: v for k, v in LabelStore(store).read().iloc[0].items()}, "params": json.dumps(params)}
                         for params in ({**good, "samples": 10**10}, {**good, "end": float("inf")}, {**good, "file": outside})])
    LabelStore(store).write_shard("labels", 99, rows)
    shutil.copy(world["audio"] / "truncated.flac", audio / GOOD[3])  # a source cut after it was labelled
    capsys.readouterr()
    summary = train(TrainConfig(store=str(store), out=str(tmp_path / "run"), student_options={"channels": 4}, batch_size=2,
                                steps=2, workers=0, threads=1, valid_fraction=0.25, progress=False))
    printed = capsys.readouterr().out
    assert summary["steps"] == 2
    assert "leaving out 3 rows of the label store" in printed
    assert "not the crop's length" in printed and "finite" in printed and f"{outside}: a row of the label store" in printed
    assert "files that could not be read" in printed


# model folders


@pytest.mark.parametrize("case", ["channels_100000", "channels_negative", "channels_zero", "channels_text", "n_fft_float",
                                  "wrong_shapes", "malformed_weights", "config_not_json"])
def test_bad_model_folders_on_every_surface(world, case, tmp_path, capsys):
    folder, words = world["models"][case]
    with pytest.raises(ValueError, match=words) as info:
        predict(synth_speech(0.5, seed=0), 16000, model=folder)
    assert str(folder) in str(info.value)
    wav = _files(world, GOOD[:1])
    commands = {
        "predict": ["predict", *wav, "--model", str(folder)],
        "evaluate": ["evaluate", str(_corpus(world, tmp_path)), "--model", str(folder), "-o", str(tmp_path / "eval"), "--bootstrap", "0"],
        "export": ["export", str(folder), "--out", str(tmp_path / "export")],
    }
    for command, argv in commands.items():
        assert main(argv) == 2, command
        assert words in _one_line_error(capsys, command, folder)


def test_bad_model_folder_as_the_student_to_train_from(world, tmp_path, capsys):
    store = LabelStore(tmp_path / "store")
    label_audio(world["audio"] / GOOD[0], world["teacher"], store.root, crop_dur=0.3, progress=False)
    for case in ("channels_100000", "wrong_shapes", "malformed_weights"):
        folder, words = world["models"][case]
        assert main(["train", str(store.root), "--out", str(tmp_path / case), "--student", str(folder), "--steps", "1",
                     "--batch-size", "2", "--quiet", "--threads", "1"]) == 2
        assert words in _one_line_error(capsys, "train", folder)


def _corpus(world, tmp_path):
    path = tmp_path / "one.csv"
    pd.DataFrame({"file": _files(world, GOOD[:2]), "arousal": [0.2, 0.4], "dominance": [0.3, 0.5], "valence": [0.6, 0.1]}).to_csv(path, index=False)
    return path


# arguments


def test_bad_arguments(world, tmp_path, capsys):
    model = world["model"]
    x = synth_speech(1.0, seed=1)
    for win_dur in (1e-4, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="win_dur must be a finite number of seconds"):
            predict(x, 16000, model=model, win_dur=win_dur)
        assert main(["predict", *_files(world, GOOD[:1]), "--model", str(model), "--win-dur", str(win_dur)]) == 2
        _one_line_error(capsys, "predict")
    with pytest.raises(ValueError, match="file paths only; item 1 is a ndarray"):
        predict([_files(world, GOOD[:1])[0], x], model=model)
    with torch.no_grad():
        expected = Wav2Small.from_pretrained(model)(torch.from_numpy(x)[None].to(torch.bfloat16).float())[0].numpy()
    np.testing.assert_allclose(predict(torch.from_numpy(x).to(torch.bfloat16), 16000, model=model), expected, atol=1e-5)
    for bad, words in ((np.where(np.arange(16000) == 5, np.nan, x), "NaN"), (x * 1e20, "implausible amplitude")):
        with pytest.raises(AudioError, match=words):
            predict(bad, 16000, model=model)
