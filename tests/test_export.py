"""ONNX export: contract, fp32 and int8 parity, audonnx bundle, footprint, CLI, every architecture."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch

from wav2small import create_student, export_onnx, list_students, predict
from wav2small.cli import main
from wav2small.models import Student
from wav2small.runners import OnnxRunner, TorchRunner
from wav2small.testing import fit_student, synth_speech, write_audio_dir


@pytest.fixture(scope="module")
def speech_dir(tmp_path_factory):
    """24 speech-like files of 1-3 s: a small calibration folder (6 of them are held out for the int8 check)."""
    return write_audio_dir(tmp_path_factory.mktemp("speech"), 24, seconds=(1.0, 3.0), seed=3, prefix="utt")


@pytest.fixture(scope="module")
def fitted_folder(tmp_path_factory):
    """A Wav2Small checkpoint folder (the format training writes) that behaves like a model."""
    torch.manual_seed(0)
    model = fit_student(create_student("wav2small"), [synth_speech(1.0, 300 + i) for i in range(24)])
    return model.save_pretrained(tmp_path_factory.mktemp("fitted") / "best")


@pytest.fixture(scope="module")
def exported(fitted_folder, speech_dir, tmp_path_factory):
    """``wav2small export CHECKPOINT --out DIR --int8 --calibration AUDIO`` with default settings."""
    out = tmp_path_factory.mktemp("export") / "w2s"
    rc = main(["export", str(fitted_folder), "--out", str(out), "--int8", "--calibration", str(speech_dir),
               "--clip-seconds", "1", "--max-clips", "64"])
    assert rc == 0
    return out


def test_export_folder_holds_models_contract_and_reports(exported):
    for name in ("model.onnx", "model.int8.onnx", "model.yaml", "contract.json", "CONTRACT.md", "report.json",
                 "footprint.json", "footprint.md"):
        assert (exported / name).is_file(), name
    contract = json.loads((exported / "contract.json").read_text())
    assert contract["input"]["name"] == "signal" and contract["input"]["dtype"] == "float32"
    assert contract["input"]["shape"] == ["batch", "samples"] and contract["input"]["sampling_rate"] == 16000
    assert contract["input"]["min_samples"] == 64
    assert contract["output"]["shape"] == ["batch", 3] and contract["output"]["labels"] == ["arousal", "dominance", "valence"]
    graph = onnx.load(str(exported / "model.onnx")).graph
    assert [d.dim_param for d in graph.input[0].type.tensor_type.shape.dim] == ["batch", "samples"]
    assert graph.input[0].name == "signal" and graph.output[0].name == "adv"
    report = json.loads((exported / "report.json").read_text())
    assert report["fp32_parity"]["passed"] and report["fp32_parity"]["max_abs_diff"] <= 1e-4
    cases = report["fp32_parity"]["cases"]
    assert {c["batch"] for c in cases} == {1, 2, 3} and max(c["samples"] for c in cases) == 30 * 16000
    q = report["int8"]
    assert q["passed"] and q["clips"] >= 8
    assert all(q["pearson"][k] >= 0.99 and q["ccc"][k] >= 0.98 for k in ("arousal", "dominance", "valence"))
    data = q["data"]
    assert data["held_out_files"] >= 1 and data["calibration_files"] >= 1
    assert not set(data["held_out_file_list"]) & set(data["calibration_file_list"])  # never check on calibration audio
    assert q["fp32_frontend_nodes"], "the front-end must be left in fp32"


def test_the_contract_says_what_nan_and_quiet_input_do_and_the_model_does_it(exported, fitted_folder):
    contract = json.loads((exported / "contract.json").read_text())
    assert contract["input"]["prenorm_eps"] == 1e-7 and contract["input"]["gain_invariant_above_dbfs"] == -50
    assert "NaN" in contract["input"]["nan"]
    text = (exported / "CONTRACT.md").read_text()
    assert "above -50 dBFS" in text and "prenorm_eps" in text and "NaN" in text
    x = np.stack([synth_speech(1.0, seed=5)] * 3)
    x[1, 1000] = np.nan
    out = OnnxRunner(exported)(x)
    assert np.isnan(out[1]).all() and np.isfinite(out[[0, 2]]).all()  # NaN in: that clip's output NaN, the others intact
    np.testing.assert_allclose(out[0], out[2])


def test_the_export_says_what_int8_means_for_the_card_model(exported):
    from wav2small.cli.export import summary

    report = json.loads((exported / "report.json").read_text())
    weighted = len(report["int8"]["int8_weight_only_nodes"])
    assert report["int8"]["int8_activation_nodes"] == [] and weighted >= 8  # 13 channels: int8 weights, fp32 compute
    assert f"int8: weights of all {weighted} weighted layers; activations of 0 of them (--activations auto: only layers " \
           "of 16+ channels" in summary(report)


def test_the_readme_lists_every_file_an_export_writes(exported):
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    section = readme[readme.index("## The ONNX contract"):]
    table = next(block for block in section.split("\n\n") if block.startswith("| file |"))
    rows = [row for row in table.splitlines() if "with `--streaming`" not in row]  # tests/test_export_streaming.py checks those
    listed = set(re.findall(r"`([\w.]+\.(?:onnx|yaml|json|md))`", "\n".join(rows)))
    assert listed == {path.name for path in exported.iterdir()}


def test_stored_constants_are_generated_and_int8_is_smaller(exported):
    fp32 = onnx.load(str(exported / "model.onnx"))
    int8 = onnx.load(str(exported / "model.int8.onnx"))
    for model in (fp32, int8):
        shapes = [tuple(i.dims) for i in model.graph.initializer]
        assert (33, 1, 64) not in shapes  # DFT kernels are computed in the graph, not stored
        assert [tuple(s.dims) for s in model.graph.sparse_initializer] == [(33, 26)]  # the mel matrix, sparse
    int8_values = sum(int(np.prod(i.dims)) for i in int8.graph.initializer if i.data_type == onnx.TensorProto.INT8)
    layers = [m for m in create_student("wav2small").modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear))]
    assert int8_values == sum(m.weight.numel() for m in layers)  # every network weight is stored as int8
    assert (exported / "model.int8.onnx").stat().st_size < 0.6 * (exported / "model.onnx").stat().st_size


def test_predict_with_the_export_matches_torch(exported, fitted_folder, speech_dir):
    student = Student.from_pretrained(fitted_folder)
    files = sorted(speech_dir.glob("*.wav"))[:4]
    by_onnx = predict(files, model=exported, win_dur=1.0)
    by_torch = predict(files, model=student, win_dur=1.0)
    assert list(by_onnx.columns) == ["arousal", "dominance", "valence"]
    assert np.abs(by_onnx.to_numpy() - by_torch.to_numpy()).max() <= 1e-4
    x = synth_speech(2.0, 5)
    assert np.abs(predict(x, 16000, model=exported / "model.onnx") - predict(x, 16000, model=student)).max() <= 1e-4
    int8 = OnnxRunner(exported, precision="int8", threads=1)
    assert int8.path.name == "model.int8.onnx"
    batch = np.stack([synth_speech(1.5, s) for s in range(3)])
    assert np.abs(int8(batch) - TorchRunner(student)(batch)).max() < 0.1  # close, not equal
    with pytest.raises(ValueError, match="precision"):
        OnnxRunner(exported, precision="fp16")


def test_audonnx_loads_the_bundle(exported, fitted_folder):
    import audonnx
    student = Student.from_pretrained(fitted_folder)
    x = synth_speech(1.3, 11)
    model = audonnx.load(str(exported))
    assert model.labels() == ["arousal", "dominance", "valence"]
    out = model(x, 16000)
    assert out.shape == (1, 3)
    assert np.abs(out - TorchRunner(student)(x[None])).max() <= 1e-4
    int8 = audonnx.load(str(exported), model_file="model.int8.yaml")
    assert np.abs(int8(x, 16000) - out).max() < 0.1


def test_footprint_counts_the_published_architecture(exported):
    prints = json.loads((exported / "footprint.json").read_text())
    fp32, int8 = prints["model.onnx"], prints["model.int8.onnx"]
    # multiply-accumulates of Wav2Small (13 channels, 26 mels, 64/32 framing) for 5 s, by hand
    c, frames = 13, (80000 - 64) // 32 + 1
    pooled = (frames + 1) // 2
    expected = (2 * 33 * 64 * frames + frames * 33 * 26 + frames * 26 * c * 9 + 2 * frames * 26 * c * c * 9
                + 4 * pooled * 13 * c * c * 9 + 2 * pooled * 13 * c * c + c * c * 13 + 338 * 3)
    assert fp32["macs"]["5s"] == expected == int8["macs"]["5s"]
    assert fp32["macs_per_second"] == round(expected / 5)
    # at least a conv's input and output (13 x frames x 26 fp32 each) are alive at once
    assert fp32["peak_activation_bytes"]["5s"] >= 2 * 13 * frames * 26 * 4
    assert fp32["peak_activation_bytes"]["5s"] > 4 * fp32["peak_activation_bytes"]["1s"]
    assert int8["weights"]["bytes"] < fp32["weights"]["bytes"] / 3
    assert fp32["file_bytes"] == (exported / "model.onnx").stat().st_size
    table = (exported / "footprint.md").read_text()
    assert "| Conv |" in table and "MACs per s of audio" in table


def test_failed_int8_check_exits_nonzero_with_the_numbers(fitted_folder, speech_dir, tmp_path, capsys):
    # int8 activations in every layer (the int8-only hardware form), judged against an impossible bar
    out = tmp_path / "strict"
    rc = main(["export", str(fitted_folder), "--out", str(out), "--int8", "--calibration", str(speech_dir),
               "--activations", "all", "--per-channel", "--clip-seconds", "1", "--max-clips", "48", "--min-pearson", "1.01"])
    assert rc == 1
    err = capsys.readouterr().err
    assert "Pearson" in err and "CCC" in err and "held-out clips" in err
    assert (out / "model.onnx").exists() and not (out / "model.int8.onnx").exists()
    q = json.loads((out / "report.json").read_text())["int8"]
    assert q["passed"] is False
    assert len(q["int8_activation_nodes"]) == 10 and not q["int8_weight_only_nodes"]  # 7 convs, lin, sof, head
    # the numbers are reported all the same, and this model meets the default bar
    assert all(q["pearson"][k] >= 0.99 and q["ccc"][k] >= 0.98 for k in ("arousal", "dominance", "valence"))


def test_bad_calibration_input_is_reported(fitted_folder, tmp_path, make_audio_dir):
    with pytest.raises(ValueError, match="calibration"):
        export_onnx(fitted_folder, tmp_path / "a", int8=True)
    one = make_audio_dir(1)
    rc = main(["export", str(fitted_folder), "--out", str(tmp_path / "b"), "--int8", "--calibration", str(one)])
    assert rc == 2  # a clear error, no traceback


def test_calibration_from_a_label_store_renders_views_and_holds_out_files(make_audio_dir, tmp_path):
    import pandas as pd

    from wav2small.export import calibration_clips
    from wav2small.holdout import CALIBRATION_SALT, held_out
    from wav2small.store import LabelStore
    from wav2small.views import render_view

    store = LabelStore(tmp_path / "labels")
    audio = make_audio_dir(24, seconds=(1.6, 2.0))
    store.create({"format": "wav2small-labels/1", "sampling_rate": 16000, "audio_roots": [str(audio)]})
    rows = []
    files = [str(f) for f in sorted(audio.glob("*.wav"))]
    for file in files:
        for view, params in enumerate([{}, {"gain": 0.5, "noise": {"colour": "pink", "seed": 3, "gain": 0.01}}]):
            params = {"file": file, "start": 0.5, "end": 1.5, "samples": 16000, **params}
            rows.append({"file": file, "start": 0.5, "end": 1.5, "view": view, "params": json.dumps(params),
                         "arousal": 0.5, "dominance": 0.5, "valence": 0.5})
    store.write_shard("labels", 0, pd.DataFrame(rows))
    calib, held, info = calibration_clips(store.root, max_clips=1000, holdout=0.25)
    checking = held_out(files, 0.25, salt=CALIBRATION_SALT)  # the package's one hold-out rule
    assert info["kind"] == "label store" and sorted(info["held_out_file_list"]) == sorted(checking)
    assert len(held) == 2 * len(checking) >= 8 and len(calib) + len(held) == 48  # every view of every file, once
    assert not set(info["held_out_file_list"]) & set(info["calibration_file_list"])
    noisy = [r for r in rows if r["file"] == info["calibration_file_list"][0]][1]["params"]
    assert any(np.array_equal(clip, render_view(noisy)) for clip in calib)  # the audio the teacher heard


@pytest.mark.slow
def test_default_int8_export_of_wav2small_72k_runs_its_wide_layers_in_int8(speech_dir, tmp_path):
    """The 33-channel preset, where --activations auto (the default) does quantize activations."""
    torch.manual_seed(0)
    student = fit_student(create_student("wav2small-72k"), [synth_speech(1.0, 300 + i) for i in range(24)])
    report = export_onnx(student, tmp_path / "72k", int8=True, calibration=speech_dir, clip_seconds=1.0, max_clips=64,
                         checks=((1, 1.0),))
    q = report["int8"]
    assert q["activations"] == "auto" and q["passed"]
    assert all(q["pearson"][k] >= 0.99 and q["ccc"][k] >= 0.98 for k in ("arousal", "dominance", "valence"))
    # l2..l7, lin and sof have 33 channels in and out; l1 (one input channel) and the head (3 outputs) keep int8 weights only
    assert len(q["int8_activation_nodes"]) == 8 and len(q["int8_weight_only_nodes"]) == 2
    graph = onnx.load(str(tmp_path / "72k" / "model.int8.onnx")).graph
    producer = {o: n for n in graph.node for o in n.output}
    for node in (n for n in graph.node if n.name in q["int8_activation_nodes"]):
        source = producer[node.input[0]]  # the activation reaches the layer through a quantize-dequantize pair
        assert source.op_type == "DequantizeLinear" and producer[source.input[0]].op_type == "QuantizeLinear", node.name
    runner, reference = OnnxRunner(tmp_path / "72k", precision="int8"), TorchRunner(student)
    x = np.stack([synth_speech(1.0, 900 + s) for s in range(4)])
    assert np.abs(runner(x) - reference(x)).max() < 0.1
