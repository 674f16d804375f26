"""Streaming ONNX (`wav2small export --streaming`): the stateful graphs, their contract, their checks,
and a runtime that knows nothing but the contract."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from onnx import TensorProto

from wav2small import AudioError, Stream, create_student, export_onnx
from wav2small.cli import main
from wav2small.contract import STATE_NAMES, STREAM_FP32_FILE, STREAM_INT8_FILE
from wav2small.export.footprint import footprint
from wav2small.export.streaming import export_stream
from wav2small.models import Student
from wav2small.testing import fit_student, synth_speech, write_audio_dir

LABELS = ("arousal", "dominance", "valence")


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # two threads on a busy machine wait on each other
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def running_student(tmp_path_factory):
    """A running-prenorm Wav2Small that behaves like a model (BatchNorm statistics and head fitted)."""
    torch.manual_seed(0)
    model = fit_student(create_student("wav2small", prenorm="running"), [synth_speech(1.0, 300 + i) for i in range(48)])
    return model.save_pretrained(tmp_path_factory.mktemp("student") / "best")


@pytest.fixture(scope="module")
def exported(running_student, tmp_path_factory):
    """`wav2small export STUDENT --int8 --activations all --streaming`: the device form."""
    root = tmp_path_factory.mktemp("stream")
    speech = write_audio_dir(root / "speech", 32, seconds=2.0, seed=7)
    out = root / "export"
    assert main(["export", str(running_student), "--out", str(out), "--int8", "--calibration", str(speech),
                 "--activations", "all", "--streaming", "--max-clips", "64"]) == 0
    return out


def stream_speech(seconds=3.0):
    """Speech-like audio whose loudness changes every second."""
    x = np.concatenate([synth_speech(1.0, 900 + i) * (0.05 + i) for i in range(int(np.ceil(seconds)))])
    return x[: int(seconds * 16000)].astype(np.float32)


def test_the_folder_holds_both_streaming_graphs_checked(exported):
    report = json.loads((exported / "report.json").read_text())["streaming"]
    assert report["chunk"] == 512 and report["lookahead_ms"] == 24.0
    assert report["fp32_parity"]["passed"] and report["fp32_parity"]["max_abs_diff"] <= 1e-5
    q = report["int8"]
    assert q["passed"] and q["clips"] >= 8 and q["estimates"] > q["clips"]
    assert all(q["pearson"][k] >= 0.99 and q["ccc"][k] >= 0.99 for k in LABELS)
    # the device form: int8 activations in every body layer (7 convs, lin, sof, head), every conv context uint8
    assert len(q["int8_activation_nodes"]) == 10 and not q["int8_weight_only_nodes"]
    assert q["uint8_states"] == sorted(["ctx_frames", "ctx_l1", "ctx_l2", "ctx_l3", "ctx_pool", "ctx_l4", "ctx_l5", "ctx_l6"])
    for name in (STREAM_FP32_FILE, STREAM_INT8_FILE):
        graph = onnx.load(str(exported / name)).graph
        assert [i.name for i in graph.input] == ["chunk", *STATE_NAMES]
        assert [o.name for o in graph.output] == ["adv", *(f"next_{s}" for s in STATE_NAMES)]


def test_the_contract_lets_any_runtime_stream(exported, running_student):
    """onnxruntime driven only by contract.json: initial state, chunk, outputs fed back."""
    contract = json.loads((exported / "contract.json").read_text())["streaming"]
    assert contract["chunk"] == 512 and contract["output"]["name"] == "adv"
    x = stream_speech()
    for name in (STREAM_FP32_FILE, STREAM_INT8_FILE):
        states = contract["states"][name]
        assert list(states) == list(STATE_NAMES)
        state = {k: np.full(s["shape"], s["initial"], s["dtype"]) for k, s in states.items()}
        session = ort.InferenceSession(str(exported / name), providers=["CPUExecutionProvider"])
        outputs = []
        for start in range(0, len(x) - 511, 512):
            result = session.run(None, {"chunk": x[None, start : start + 512], **state})
            outputs.append(result[0][0])
            state = {k: v for k, v in zip(states, result[1:])}
        expected = Stream(running_student, hop=512 / 16000).feed(x)
        tolerance = 1e-5 if name == STREAM_FP32_FILE else 0.05
        np.testing.assert_allclose(np.array(outputs), np.array(expected)[:, 1:], atol=tolerance, rtol=0)
    assert "## Streaming graphs" in (exported / "CONTRACT.md").read_text()


def test_contract_md_alone_documents_the_chunk_lookahead_and_every_state(exported):
    """CONTRACT.md gives the chunk, the look-ahead in ms, when outputs are valid, and per graph every
    state tensor with the shape and dtype the graph declares and the initial value of contract.json."""
    text = (exported / "CONTRACT.md").read_text()
    section = text[text.index("## Streaming graphs"):]
    assert "chunk of **512 samples (32 ms)**" in section and "the newest 24 ms" in section
    assert "after **every** chunk" in section and "valid from the first chunk on" in section and "NaN" in section
    states = json.loads((exported / "contract.json").read_text())["streaming"]["states"]
    dtypes = {TensorProto.FLOAT: "float32", TensorProto.UINT8: "uint8", TensorProto.INT64: "int64"}
    parts = re.split(r"\n`(model\.stream[.a-z0-9]*)` \(([\d,]+) bytes of state\):\n", section)
    tables = {parts[i]: (int(parts[i + 1].replace(",", "")), parts[i + 2]) for i in range(1, len(parts), 3)}
    assert set(tables) == {STREAM_FP32_FILE, STREAM_INT8_FILE}
    for name, (total, table) in tables.items():
        rows = {m[0]: m[1:] for m in re.findall(r"^\| `(\w+)` \| (\([\d, ]+\)) \| (\w+) \| (\S+) \|$", table, re.M)}
        graph = onnx.load(str(exported / name)).graph
        declared = {i.name: (str(tuple(d.dim_value for d in i.type.tensor_type.shape.dim)), dtypes[i.type.tensor_type.elem_type])
                    for i in graph.input[1:]}
        assert list(rows) == list(STATE_NAMES) == list(declared)
        assert {k: v[:2] for k, v in rows.items()} == declared
        assert all(float(rows[k][2]) == pytest.approx(s["initial"], rel=1e-6) for k, s in states[name].items())
        assert total == sum(np.zeros(s["shape"], s["dtype"]).nbytes for s in states[name].values())
    assert rows["position"][2] == "-1" and tables[STREAM_FP32_FILE][0] == 14552


def test_an_onnx_stream_refuses_bad_chunks_and_keeps_its_state(exported):
    x = stream_speech(1.5)
    stream, clean = Stream(exported), Stream(exported)
    stream.feed(x[:5000])
    before = {k: v.copy() for k, v in stream.state.items()}
    bad = x[5000:6000].copy()
    bad[3] = np.inf
    with pytest.raises(AudioError, match="1 NaN or infinite samples.*unchanged"):
        stream.feed(bad)
    with pytest.raises(AudioError, match="8000 Hz"):
        stream.feed(x[5000:6000], sampling_rate=8000)
    assert stream.feed(np.zeros(0, np.float32)) == []
    assert stream.samples == 5000 and all(np.array_equal(before[k], v) for k, v in stream.state.items())
    assert stream.feed(x[5000:]) == clean.feed(x)


def test_int8_state_and_chunk_memory_fit_a_small_device(exported):
    fp32 = footprint(exported / STREAM_FP32_FILE)["stream"]
    int8 = footprint(exported / STREAM_INT8_FILE)["stream"]
    assert fp32["state_bytes"] == 14552 and int8["state_bytes"] == 5270  # the card model's (1, 13, ...) state
    assert int8["state_bytes"] <= 8 * 1024 and int8["peak_activation_bytes"] <= 32 * 1024
    offline = json.loads((exported / "footprint.json").read_text())["model.onnx"]["peak_activation_bytes"]["5s"]
    assert offline > 100 * int8["peak_activation_bytes"]
    assert "state" in (exported / "footprint.md").read_text()


def test_stream_runs_the_export_folder(exported, running_student):
    x = stream_speech(2.2)
    onnx_stream = Stream(exported, hop=0.5)
    assert onnx_stream.hop == 0.512  # whole chunks
    got = onnx_stream.feed(x) + [onnx_stream.flush()]
    expected = Stream(running_student, hop=0.512).feed(x[: len(x) // 512 * 512]) + [Stream(running_student, hop=100).flush()]
    assert [e.time for e in got] == [0.512, 1.024, 1.536, 2.048, len(x) // 512 * 512 / 16000]
    np.testing.assert_allclose(np.array(got[:-1]), np.array(expected[:-1]), atol=1e-5, rtol=0)
    int8 = Stream(exported, hop=0.5, precision="int8").feed(x)
    assert np.abs(np.array(int8) - np.array(got[:-1])).max() < 0.05
    with pytest.raises(ValueError, match="fixed when a stream is exported"):
        Stream(exported, decay_seconds=3.0)


def test_decay_and_chunk_are_export_settings(running_student, tmp_path):
    student = Student.from_pretrained(running_student)
    report = export_stream(student, tmp_path, int8=False, chunk=1024, decay_seconds=3.0)
    assert report["chunk"] == 1024 and report["decay_seconds"] == 3.0 and report["fp32_parity"]["passed"]
    x = stream_speech(3.0)
    got = Stream(tmp_path / STREAM_FP32_FILE, hop=1024 / 16000).feed(x)
    expected = Stream(student, hop=1024 / 16000, decay_seconds=3.0).feed(x)
    np.testing.assert_allclose(np.array(got), np.array(expected), atol=1e-5, rtol=0)
    assert np.abs(np.array(got) - np.array(Stream(student, hop=1024 / 16000).feed(x))).max() > 1e-3  # decay matters
    with pytest.raises(ValueError, match="multiple of 2 x hop = 64"):
        export_onnx(running_student, tmp_path / "bad", streaming=True, chunk=500)


def test_streaming_export_needs_a_wav2small(tmp_path, capsys):
    assert main(["export", "mobilenetv3-small", "--out", str(tmp_path / "m"), "--streaming"]) == 2
    assert "Wav2Small-family" in capsys.readouterr().err


def test_the_readme_lists_every_file_a_streaming_export_writes(exported):
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    section = readme[readme.index("## The ONNX contract"):]
    table = next(block for block in section.split("\n\n") if block.startswith("| file |"))
    assert set(re.findall(r"`([\w.]+\.(?:onnx|yaml|json|md))`", table)) == {path.name for path in exported.iterdir()}
