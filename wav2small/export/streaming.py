"""Stateful streaming ONNX of a Wav2Small (``wav2small export --streaming``): a fixed chunk in, A/D/V
and the next state out, every state tensor a named input and output (the Silero VAD convention), so
any runtime that can call a graph can stream.

    model.stream.onnx        inputs  chunk (1, chunk) float32 and the state tensors (STATE_NAMES)
                             outputs adv (1, 3) and next_<state> for every state tensor
    model.stream.int8.onnx   int8 weights and uint8 activations in the network body; the conv
                             contexts of its state are uint8 (each its layer's quantized values)

After every chunk ``adv`` equals the offline model (``prenorm="running"``) on all audio so far.
The shapes, dtypes and initial values of the state are in each graph's metadata
(``wav2small.stream``, JSON) and in contract.json.
"""

from __future__ import annotations

import contextlib
import io
import json
import tempfile
import warnings
from pathlib import Path

import numpy as np
import onnx
import torch
from onnx import TensorProto, helper, numpy_helper
from torch import nn

from ..contract import LABELS, SAMPLING_RATE, STATE_NAMES, STATE_OUTPUT_PREFIX, STREAM_FP32_FILE, STREAM_INT8_FILE, STREAM_METADATA
from ..metrics import concordance_cc, pearson_cc
from ..streaming import OnnxSteps, StreamingWav2Small, TorchSteps
from .checks import ParityError
from .graph import OPSET, compact_constants, quiet_logging, save_model, strip_metadata
from .quantize import MIN_INT8_CHANNELS, quantize_weights

CHUNK_NAME = "chunk"
#: Default chunk: 512 samples = 32 ms at 16 kHz, as Silero VAD's.
CHUNK = 512
#: Largest |ONNX - torch engine| of the fp32 streaming graph over the check signal.
STREAM_ATOL = 1e-5
#: Most (chunk, state) examples the int8 calibration records (onnxruntime keeps every activation of each).
MAX_CALIBRATION_STEPS = 1200
#: Estimates per held-out clip compared in the int8 check: every EVERY-th chunk and the last.
EVERY = 8


def next_name(state: str) -> str:
    """Output name of a state tensor."""
    return STATE_OUTPUT_PREFIX + state


class ChunkStep(nn.Module):
    """One fixed chunk of a stream as a graph: (chunk (1, chunk), *state) -> (adv (1, 3), *next state)."""

    def __init__(self, model, *, chunk: int = CHUNK, decay_seconds: float | None = None):
        super().__init__()
        hop = model.config.hop
        if chunk < 2 * hop or chunk % (2 * hop):
            raise ValueError(f"chunk must be a multiple of 2 x hop = {2 * hop} samples (the max-pool's stride), got {chunk}")
        probe = StreamingWav2Small(model)
        # each chunk adds an even number of frames, so where the stride-2 pool windows start is fixed
        self.parity = (probe.first_position - 3) % 2
        self.engine = StreamingWav2Small(model, decay_seconds=decay_seconds, pool_context=1 + self.parity, dtype=torch.float32)
        self.chunk = chunk

    def forward(self, chunk, *states):
        next_state, adv = self.engine(chunk, dict(zip(STATE_NAMES, states)), parity=self.parity, readout=True)
        return (adv, *[next_state[k] for k in STATE_NAMES])

    def to_onnx(self, opset: int) -> onnx.ModelProto:
        initial = self.engine.initial_state()
        args = (torch.zeros(1, self.chunk), *[initial[k] for k in STATE_NAMES])
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            program = torch.onnx.export(self.eval(), args, None, dynamo=True, input_names=[CHUNK_NAME, *STATE_NAMES],
                                        output_names=["adv", *map(next_name, STATE_NAMES)], opset_version=opset, verbose=False)
        return program.model_proto

    def info(self) -> dict:
        """What a runtime needs besides the graph: chunk, front-end, look-ahead, settings."""
        engine = self.engine
        return {"chunk": self.chunk, "sampling_rate": engine.config.sampling_rate, "hop": engine.hop, "n_fft": engine.n_fft,
                "lookahead_ms": engine.lookahead_frames * engine.hop * 1000 / engine.config.sampling_rate,
                "prenorm_seconds": engine.prenorm_seconds, "decay_seconds": engine.decay_seconds}


def set_stream_metadata(proto: onnx.ModelProto, info: dict, initial: dict[str, np.ndarray]) -> dict:
    """Write ``info`` and every state's shape, dtype and initial value (one fill value each) into the
    graph's metadata under STREAM_METADATA (in place); returns that record."""
    states = {}
    for value in proto.graph.input:
        if value.name in initial:
            fill = np.unique(initial[value.name])
            if len(fill) != 1:
                raise ValueError(f"state {value.name} does not start at a single value")
            dtype = helper.tensor_dtype_to_np_dtype(value.type.tensor_type.elem_type)
            states[value.name] = {"shape": [d.dim_value for d in value.type.tensor_type.shape.dim],
                                  "dtype": np.dtype(dtype).name, "initial": np.asarray(fill[0], dtype).item()}
    record = {**info, "states": states}
    kept = [p for p in proto.metadata_props if p.key != STREAM_METADATA]
    del proto.metadata_props[:]
    proto.metadata_props.extend(kept)
    proto.metadata_props.add(key=STREAM_METADATA, value=json.dumps(record))
    return record


# checks


def check_signal(seconds: float = 4.0, seed: int = 0) -> np.ndarray:
    """A deterministic test stream: tones and noise whose level jumps by 30 dB every second, so the
    running prenorm has to follow."""
    rng = np.random.default_rng(seed)
    n = int(seconds * SAMPLING_RATE)
    t = np.arange(n) / SAMPLING_RATE
    x = np.sin(2 * np.pi * (150 + 100 * np.sin(2 * np.pi * 0.7 * t)) * t) + 0.3 * rng.standard_normal(n)
    gain = 10.0 ** rng.uniform(-2.5, 0.0, int(np.ceil(seconds)))
    return (x * np.repeat(gain, SAMPLING_RATE)[:n]).astype(np.float32)


def check_against_engine(student, step: ChunkStep, onnx_path, *, atol: float = STREAM_ATOL) -> dict:
    """Largest |ONNX - torch engine| of ``adv`` after every chunk of :func:`check_signal`; the engine
    (of ``student``, the model ``step`` was made from) keeps its running sums in float64, the graph
    in float32."""
    x = check_signal()
    x = x[: len(x) // step.chunk * step.chunk]
    engine = TorchSteps(StreamingWav2Small(student, decay_seconds=step.engine.decay_seconds,
                                           prenorm_seconds=step.engine.prenorm_seconds))
    graph = OnnxSteps(onnx_path)
    worst = 0.0
    for start in range(0, len(x), step.chunk):
        piece = x[start : start + step.chunk]
        expected = engine.step(piece, readout=True, partial=piece[:0])
        worst = max(worst, float(np.abs(graph.step(piece, readout=True, partial=piece[:0]) - expected).max()))
    return {"max_abs_diff": worst, "tolerance": atol, "chunks": len(x) // step.chunk, "passed": bool(worst <= atol)}


def stream_clips(onnx_path, clips, *, every: int = EVERY) -> np.ndarray:
    """Each clip streamed from a fresh state through ``onnx_path``: ``adv`` after every ``every``-th
    chunk and the last, all clips concatenated (N, 3)."""
    graph = OnnxSteps(onnx_path)
    rows = []
    for clip in clips:
        graph.reset()
        count = len(clip) // graph.unit
        for i in range(count):
            adv = graph.step(clip[i * graph.unit : (i + 1) * graph.unit].astype(np.float32), readout=True, partial=clip[:0])
            if (i + 1) % every == 0 or i == count - 1:
                rows.append(adv)
    return np.array(rows)


def compare_streams(reference_path, candidate_path, clips) -> dict:
    """Pearson and CCC per dimension of two streaming graphs' estimates on ``clips``."""
    ref, cand = stream_clips(reference_path, clips), stream_clips(candidate_path, clips)
    pearson = dict(zip(LABELS, np.round(np.atleast_1d(pearson_cc(ref, cand)).astype(float), 5).tolist()))
    ccc = dict(zip(LABELS, np.round(np.atleast_1d(concordance_cc(ref, cand)).astype(float), 5).tolist()))
    return {"clips": len(clips), "estimates": len(ref), "pearson": pearson, "ccc": ccc,
            "max_abs_diff": float(np.abs(ref - cand).max()), "reference_std": dict(zip(LABELS, np.round(ref.std(axis=0), 5).tolist()))}


# int8


def body_nodes(proto: onnx.ModelProto) -> dict[str, int]:
    """The network body's weighted nodes (the convs l1..l7, lin, sof and the head) -> their narrowest
    channel count; the front-end (DFT convs, mel matrix, prenorm) is not among them."""
    inits = {i.name: i for i in proto.graph.initializer}
    found = {}
    for node in proto.graph.node:
        weight = node.input[1] if len(node.input) > 1 else ""
        if node.op_type in ("Conv", "Gemm") and weight.startswith(("engine.w", "engine.lin.", "engine.sof.", "engine.adv.")):
            found[node.name] = min(inits[weight].dims[:2])
    return found


def calibration_steps(onnx_path, clips, *, limit: int = MAX_CALIBRATION_STEPS) -> list[dict]:
    """(chunk, state) inputs met when streaming ``clips`` through the fp32 graph, at most ``limit``,
    spread evenly over all chunks (early ones, with the stream's start, included)."""
    graph = OnnxSteps(onnx_path)
    total = sum(len(c) // graph.unit for c in clips)
    stride = max(1, int(np.ceil(total / limit)))
    feeds, index = [], 0
    for clip in clips:
        graph.reset()
        for i in range(len(clip) // graph.unit):
            piece = clip[None, i * graph.unit : (i + 1) * graph.unit].astype(np.float32)
            if index % stride == 0:
                feeds.append({CHUNK_NAME: piece, **graph.state})
            graph.step(piece[0], readout=False, partial=piece[0, :0])
            index += 1
    return feeds


class _FeedReader:
    """onnxruntime CalibrationDataReader over recorded graph inputs."""

    def __init__(self, feeds):
        self.feeds = iter(feeds)

    def get_next(self):
        return next(self.feeds, None)


def quantize_stream(fp32_path, feeds, *, per_channel: bool = False, activations: str = "all",
                    reduce_range: bool = False) -> tuple[onnx.ModelProto, dict]:
    """Static int8 (QDQ) of the streaming graph's body, calibrated (min/max) on ``feeds``; then the conv
    contexts of the state are stored as uint8 (:func:`store_contexts_quantized`). ``reduce_range``:
    7-bit weights (see :class:`wav2small.options.ExportConfig`)."""
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static


    proto = onnx.load(str(fp32_path))
    body = body_nodes(proto)
    full = [n for n, width in body.items() if activations == "all" or width >= MIN_INT8_CHANNELS]
    with tempfile.TemporaryDirectory() as tmp, warnings.catch_warnings(), quiet_logging():
        warnings.simplefilter("ignore")
        out = Path(tmp) / "int8.onnx"
        quantize_static(str(fp32_path), str(out), _FeedReader(feeds), quant_format=QuantFormat.QDQ,
                        op_types_to_quantize=["Conv", "Gemm"], nodes_to_quantize=full, per_channel=per_channel,
                        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8, calibrate_method=CalibrationMethod.MinMax,
                        reduce_range=reduce_range)
        quantized = onnx.load(str(out))
    weight_only = [n for n in body if n not in full]
    quantize_weights(quantized, weight_only, per_channel=per_channel)
    contexts = store_contexts_quantized(quantized)
    return quantized, {"int8_activation_nodes": full, "int8_weight_only_nodes": weight_only, "uint8_states": sorted(contexts),
                       "calibration_steps": len(feeds), "calibration_method": "minmax"}


def store_contexts_quantized(proto: onnx.ModelProto) -> dict[str, tuple[str, str]]:
    """Keep the conv contexts of a QDQ streaming graph as uint8 (in place).

    First a float concatenation of a context with values all on one quantization grid (the ReLU
    and 0/1 masks of a dequantized tensor: the max-pool's input) is quantized there and dequantized
    again, as an int8 runtime holds it. Then a context read only by a concatenation that is
    quantized with (scale, zero point) is stored as those uint8 values: dequantized after the
    input, the next one quantized before the output. Exact: quantizing a dequantized value with the
    same scale and zero point gives back the same integer. Returns state name -> (scale, zero point)
    initializer names.
    """
    graph = proto.graph
    zeros = {i.name for i in graph.initializer if not numpy_helper.to_array(i).any()}
    producer = {name: node for node in graph.node for name in node.output}

    def grid_of(name):
        """(scale, zero point) of the DequantizeLinear whose values ``name`` carries unchanged, else None."""
        node = producer.get(name)
        while node is not None and node.op_type in ("Relu", "Slice", "Mul"):  # Mul: the 0/1 masks
            node = producer.get(node.input[0])
        return (node.input[1], node.input[2]) if node is not None and node.op_type == "DequantizeLinear" else None

    states = set(STATE_NAMES)
    nodes = []
    for node in graph.node:
        nodes.append(node)
        if node.op_type != "Concat" or not states & set(node.input):
            continue
        grids = {grid_of(i) for i in node.input if i not in states and i not in zeros}
        readers = [n for n in graph.node if node.output[0] in n.input]
        if len(grids) != 1 or None in grids or any(n.op_type == "QuantizeLinear" for n in readers):
            continue
        scale, zero = grids.pop()
        held = node.output[0]
        for reader in readers:
            reader.input[:] = [held + "_held" if name == held else name for name in reader.input]
        nodes += [helper.make_node("QuantizeLinear", [held, scale, zero], [held + "_quantized"], name=held + "_quantize"),
                  helper.make_node("DequantizeLinear", [held + "_quantized", scale, zero], [held + "_held"], name=held + "_dequantize")]
    del graph.node[:]
    graph.node.extend(nodes)

    consumers = {}
    for node in graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    found = {}
    for state in STATE_NAMES:
        readers = consumers.get(state, [])
        if len(readers) != 1 or readers[0].op_type != "Concat":
            continue
        grids = {(q.input[1], q.input[2]) for q in consumers[readers[0].output[0]] if q.op_type == "QuantizeLinear"}
        if len(grids) == 1:
            found[state] = grids.pop()
    first, last = [], []
    for state, (scale, zero) in found.items():
        _set_type(graph.input, state, TensorProto.UINT8)
        for node in graph.node:
            node.input[:] = [state + "_dequantized" if name == state else name for name in node.input]
        first.append(helper.make_node("DequantizeLinear", [state, scale, zero], [state + "_dequantized"], name=state + "_dequantize"))
        out = next_name(state)
        for node in graph.node:
            node.output[:] = [out + "_float" if name == out else name for name in node.output]
        last.append(helper.make_node("QuantizeLinear", [out + "_float", scale, zero], [out], name=out + "_quantize"))
        _set_type(graph.output, out, TensorProto.UINT8)
    nodes = first + list(graph.node) + last
    del graph.node[:]
    graph.node.extend(nodes)
    return found


def _set_type(values, name: str, elem_type: int) -> None:
    for value in values:
        if value.name == name:
            value.type.tensor_type.elem_type = elem_type


def initial_state(proto: onnx.ModelProto, float_state: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The initial state of a (possibly uint8-context) graph: a uint8 context starts at the zero point
    of its quantization, which stands for the float 0 of ``float_state``."""
    inits = {i.name: i for i in proto.graph.initializer}
    state = dict(float_state)
    for node in proto.graph.node:
        if node.op_type == "DequantizeLinear" and node.input[0] in state:
            zero = numpy_helper.to_array(inits[node.input[2]])
            state[node.input[0]] = np.full(float_state[node.input[0]].shape, zero, np.uint8)
    return state


# the export


def export_stream(student, out_dir, *, int8: bool, calibration=(), held_out=(), chunk: int = CHUNK,
                  decay_seconds: float | None = None, per_channel: bool = False, activations: str = "all",
                  min_pearson: float = 0.99, min_ccc: float = 0.99, reduce_range: bool = False) -> dict:
    """Write ``model.stream.onnx`` (and with ``int8`` ``model.stream.int8.onnx``) into ``out_dir`` and
    check them: fp32 against the torch engine (<= STREAM_ATOL after every chunk of a test stream),
    int8 against fp32 on the ``held_out`` clips streamed (Pearson and CCC per dimension).

    ``calibration``: clips whose streamed (chunk, state) inputs calibrate the int8 activations.
    Returns the report's ``streaming`` section. Raises ParityError when a check fails; the failing
    graph is not written.
    """

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / STREAM_INT8_FILE).unlink(missing_ok=True)
    step = ChunkStep(student, chunk=chunk, decay_seconds=decay_seconds)
    proto = step.to_onnx(OPSET)
    strip_metadata(proto)
    float_initial = {k: v.numpy() for k, v in step.engine.initial_state().items()}
    info = step.info()
    set_stream_metadata(proto, info, float_initial)
    save_model(compact_constants(proto), out_dir / STREAM_FP32_FILE)
    report = {**info, "fp32_parity": check_against_engine(student, step, out_dir / STREAM_FP32_FILE)}
    if not report["fp32_parity"]["passed"]:
        (out_dir / STREAM_FP32_FILE).unlink()
        raise ParityError(f"{STREAM_FP32_FILE} differs from the torch streaming engine by "
                          f"{report['fp32_parity']['max_abs_diff']:.3g} (tolerance {STREAM_ATOL:g})", {"streaming": report})
    if not int8:
        return report
    with tempfile.TemporaryDirectory() as tmp:
        plain = Path(tmp) / "plain.onnx"  # quantize the graph before its constants are compacted
        save_model(proto, plain)
        quantized, choices = quantize_stream(plain, calibration_steps(plain, calibration), per_channel=per_channel,
                                             activations=activations, reduce_range=reduce_range)
        set_stream_metadata(quantized, info, initial_state(quantized, float_initial))
        candidate = Path(tmp) / STREAM_INT8_FILE
        save_model(compact_constants(quantized), candidate)
        check = compare_streams(out_dir / STREAM_FP32_FILE, candidate, held_out)
        passed = all(check["pearson"][k] >= min_pearson and check["ccc"][k] >= min_ccc for k in LABELS)
        report["int8"] = {"per_channel": per_channel, "activations": activations, "reduce_range": reduce_range, **choices,
                          **check, "thresholds": {"pearson": min_pearson, "ccc": min_ccc}, "passed": passed}
        if not passed:
            raise ParityError(f"{STREAM_INT8_FILE} misses the check against {STREAM_FP32_FILE} on {check['clips']} held-out "
                              f"clips streamed: Pearson {check['pearson']}, CCC {check['ccc']} (need >= {min_pearson} and "
                              f">= {min_ccc} per dimension); not written", {"streaming": report})
        (out_dir / STREAM_INT8_FILE).write_bytes(candidate.read_bytes())
    return report


def contract_section(out_dir) -> dict:
    """The streaming part of contract.json: chunk, tensors, every state (per file), look-ahead."""
    out_dir = Path(out_dir)
    files = {}
    for file in (STREAM_FP32_FILE, STREAM_INT8_FILE):
        if (out_dir / file).exists():
            meta = {p.key: p.value for p in onnx.load(str(out_dir / file), load_external_data=False).metadata_props}
            files[file] = json.loads(meta[STREAM_METADATA])
    if not files:
        return {}
    info = next(iter(files.values()))
    return {
        "files": list(files), "chunk": info["chunk"], "chunk_input": {"name": CHUNK_NAME, "dtype": "float32", "shape": [1, info["chunk"]]},
        "output": {"name": "adv", "dtype": "float32", "shape": [1, 3], "labels": list(LABELS),
                   "valid": "after every chunk: the offline model (running prenorm) on all audio so far"},
        "lookahead_ms": info["lookahead_ms"], "prenorm_seconds": info["prenorm_seconds"], "decay_seconds": info["decay_seconds"],
        "state_output_prefix": STATE_OUTPUT_PREFIX, "states": {file: meta["states"] for file, meta in files.items()},
    }


def contract_markdown(section: dict) -> str:
    """The streaming section of CONTRACT.md."""
    if not section:
        return ""
    ms = section["chunk"] * 1000 / SAMPLING_RATE
    lines = ["", "## Streaming graphs", "",
             f"`{'`, `'.join(section['files'])}`: one call per chunk of **{section['chunk']} samples ({ms:g} ms)**, batch 1 "
             "(the Silero VAD convention: the state goes in and comes out as named tensors).", "",
             f"- Input `{CHUNK_NAME}`: float32 (1, {section['chunk']}), 16 kHz mono, any gain; then every state tensor below.",
             f"- Output `adv`: float32 (1, 3) arousal, dominance, valence after **every** chunk: the offline model (running "
             "prenorm) on all audio received so far, valid from the first chunk on; then "
             f"`{section['state_output_prefix']}<name>` for every state tensor: feed them back as `<name>` with the next chunk.",
             f"- Look-ahead: the newest {section['lookahead_ms']:g} ms are seen through the offline model's end-of-input zero "
             "padding (provisionally, recomputed with the next chunks); no output waits for audio. The end of a stream needs "
             "no flush call: `adv` of the last chunk is the answer; a trailing partial chunk is not processed.",
             f"- Input normalisation: running mean and power, time constant {section['prenorm_seconds']:g} s (warm-up: at the "
             "start the statistics are those of the audio so far).",
             "- NaN or infinite samples poison the state (running statistics, attention sums) for the rest of the stream: "
             "check each chunk with `isfinite` and drop or replace a bad one before the call (`wav2small.Stream` refuses it "
             "and keeps its state).",
             "- Pooling over time: " + ("the whole stream, as the offline model." if section["decay_seconds"] is None else
                                        f"weights decay with time constant {section['decay_seconds']:g} s (the estimate follows "
                                        "roughly that much of the recent past)."),
             "- Start a stream (or a new one) with every state at its initial value:"]
    for file, states in section["states"].items():
        total = sum(int(np.prod(s["shape"])) * np.dtype(s["dtype"]).itemsize for s in states.values())
        lines += ["", f"`{file}` ({total:,} bytes of state):", "", "| state | shape | dtype | initial value |", "|---|---|---|---|"]
        lines += [f"| `{name}` | {tuple(s['shape'])} | {s['dtype']} | {s['initial']:g} |" for name, s in states.items()]
    return "\n".join(lines) + "\n"
