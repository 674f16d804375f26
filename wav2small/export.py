"""ONNX export of a student: fp32 and int8 models, the input/output contract, an audonnx view and
parity checks (fp32 against torch, int8 against fp32 on held-out audio) that fail loudly.

Layout of an export folder ``DIR``::

    model.onnx              fp32, input ``signal`` (batch, samples) float32 16 kHz -> ``adv`` (batch, 3)
    model.int8.onnx         with int8: weights int8, activations int8 where it pays, log-mel front-end fp32
    model.yaml              audonnx view: ``audonnx.load(DIR)`` (model.audonnx.onnx, batch fixed to 1)
    model.int8.yaml         the same for the int8 model (``audonnx.load(DIR, model_file="model.int8.yaml")``)
    contract.json           the input/output contract, machine-readable; CONTRACT.md for people
    report.json             parity numbers and the choices made
    footprint.json/.md      parameters, bytes, MACs, activation memory, per-layer table
"""

from __future__ import annotations

import contextlib
import io
import math
import tempfile
import warnings
from pathlib import Path

import numpy as np
import onnx
import torch
from onnx import TensorProto, helper, numpy_helper

from .atomic import atomic_path, write_json, write_text
from .audio import AudioError, find_audio_files, read_segment
from .contract import (AUDONNX_FILES, CONTRACT_FILE, CONTRACT_MARKDOWN_FILE, FOOTPRINT_FILE, FOOTPRINT_MARKDOWN_FILE, FP32_FILE,
                       INPUT_NAME, INT8_FILE, LABELS, OUTPUT_NAME, REPORT_FILE, SAMPLING_RATE)
from .frontend import PRENORM_EPS
from .holdout import CALIBRATION_SALT, held_out
from .metrics import concordance_cc, pearson_cc
from .models import Student
from .runners import OnnxRunner, TorchRunner, load_student, run_clips
from .store import LabelStore, is_label_store

OPSET = 18
# audonnx reshapes its input to the model's input shape and allows one dynamic axis only, so its
# bundle holds the same graph with the batch axis fixed to 1 (AUDONNX_FILES).
AUDONNX_FORMAT = "$audonnx.core.model.Model==1.0.1"
# (batch, seconds) of the fp32-versus-torch check; the odd sample count checks the frame arithmetic.
FP32_CHECKS = ((1, 1.0), (2, 5.0), (3, 2.5 + 37 / SAMPLING_RATE), (1, 30.0))
# int8 kernels beat fp32 ones on CPUs only when a layer is wide enough to fill their register blocks
# (measured with onnxruntime: 13-channel convs were slower in int8, 33-channel ones twice as fast).
MIN_INT8_CHANNELS = 16
# Fewer held-out clips make the int8 correlation check meaningless.
MIN_HELD_OUT = 8


class ParityError(RuntimeError):
    """An exported model does not match its reference; ``report`` holds the numbers."""

    def __init__(self, message: str, report: dict):
        super().__init__(message)
        self.report = report


def export_onnx(
    model,
    out_dir,
    *,
    int8: bool = False,
    calibration=None,
    per_channel: bool = False,
    activations: str = "auto",
    clip_seconds: float = 2.0,
    max_clips: int = 256,
    holdout: float = 0.25,
    min_pearson: float = 0.99,
    min_ccc: float = 0.98,
    atol: float = 1e-4,
    checks=FP32_CHECKS,
    seed: int = 0,
    progress: bool = False,
) -> dict:
    """Export a student to ``out_dir`` as ONNX, check it, and write the contract and reports.

    Args:
        model: a preset name (see :func:`wav2small.list_students`), a student folder or hub id
            (``Student.from_pretrained``), or a :class:`~wav2small.Student` object.
        out_dir: folder to write (created; files of an earlier export are replaced).
        int8: also write ``model.int8.onnx``: static quantization calibrated on ``calibration``.
        calibration: audio folder, or a label store (folder with ``metadata.json``) whose views
            are rendered. Files are split: ``holdout`` of them (at least one) never calibrate and
            serve the int8-versus-fp32 check.
        per_channel: one weight scale per output channel instead of one per tensor.
        activations: ``auto`` quantizes the activations of layers with at least 16 input and
            output channels (where int8 kernels are faster) and stores only the weights of the
            others as int8; ``all`` quantizes the activations of every layer of the network body
            (the form an int8-only accelerator needs). The front-end is fp32 in both.
        clip_seconds: length of the calibration and check crops in seconds.
        max_clips: most crops drawn in all.
        holdout: fraction of the calibration files kept for the check.
        min_pearson, min_ccc: per-dimension thresholds of the int8-versus-fp32 check.
        atol: largest allowed absolute difference between fp32 ONNX and torch outputs.
        checks: (batch size, seconds) of the fp32-versus-torch cases (default: 1 x 1 s, 2 x 5 s,
            3 x 2.5 s, 1 x 30 s).
        seed: seed of the order in which calibration files are read.
        progress: show progress bars.

    Returns:
        the report (also written as ``report.json``).

    Raises:
        ParityError: a check failed; ``report.json`` is written, the failing model is not.

    >>> report = export_onnx("wav2small", "export/w2s", int8=True, calibration="speech/")  # doctest: +SKIP
    >>> report["int8"]["ccc"]  # doctest: +SKIP
    {'arousal': 0.998, 'dominance': 0.997, 'valence': 0.998}
    """
    if activations not in ("auto", "all"):
        raise ValueError(f"activations must be 'auto' or 'all', got {activations!r}")
    if int8 and calibration is None:
        raise ValueError("int8 export needs calibration audio (an audio folder or a label store): real speech, not noise")
    student, source = load_student(model)
    student.eval()
    if int8:  # read the audio first: a bad folder fails before minutes of work
        calib, held, data_info = calibration_clips(calibration, clip_seconds=clip_seconds, max_clips=max_clips,
                                                   holdout=holdout, seed=seed, progress=progress)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    for stale in [INT8_FILE, *(name for names in AUDONNX_FILES.values() for name in names)]:
        (out_dir / stale).unlink(missing_ok=True)

    proto = torch_to_onnx(student)
    frontend = frontend_nodes(proto)
    strip_metadata(proto)
    report = {
        "model": {"source": source, "architecture": student.architecture, "config": student.config_dict(),
                  "parameters": student.num_parameters(), "state_values": student.num_state_values()},
        "exporter": _versions(),
        "files": {},
    }
    fp32 = compact_constants(proto)
    _save(fp32, out_dir / FP32_FILE)
    report["fp32_parity"] = check_against_torch(student, out_dir / FP32_FILE, atol=atol, checks=checks)
    if not report["fp32_parity"]["passed"]:
        (out_dir / FP32_FILE).unlink()
        _write_json(out_dir / REPORT_FILE, report)
        raise ParityError(f"fp32 ONNX differs from torch by {report['fp32_parity']['max_abs_diff']:.3g} "
                          f"(tolerance {atol:g}); see {out_dir / REPORT_FILE}", report)
    write_audonnx_view(out_dir, FP32_FILE)

    if int8:
        quantized, choices = quantize(proto, frontend, calib, per_channel=per_channel, activations=activations)
        int8_model = compact_constants(quantized)
        with tempfile.TemporaryDirectory() as tmp:
            _save(int8_model, Path(tmp) / INT8_FILE)
            check = compare_outputs(out_dir / FP32_FILE, Path(tmp) / INT8_FILE, held, min_pearson=min_pearson, min_ccc=min_ccc)
            report["int8"] = {"per_channel": per_channel, "activations": activations, **choices,
                              "data": data_info, **check}
            if check["passed"]:
                _save(int8_model, out_dir / INT8_FILE)
        if not check["passed"]:
            _write_json(out_dir / REPORT_FILE, report)
            raise ParityError(f"int8 model misses the check against fp32 on {check['clips']} held-out clips: "
                              f"Pearson {check['pearson']}, CCC {check['ccc']} (need >= {min_pearson} and >= {min_ccc} "
                              f"per dimension); model.int8.onnx not written, see {out_dir / REPORT_FILE}", report)
        write_audonnx_view(out_dir, INT8_FILE)

    from .footprint import footprint, footprint_markdown

    contract = write_contract(out_dir, student)
    files = [FP32_FILE] + ([INT8_FILE] if int8 else [])
    prints = {name: footprint(out_dir / name) for name in files}
    _write_json(out_dir / FOOTPRINT_FILE, prints)
    title = (f"{student.architecture} ({source}): {student.num_parameters():,} trainable parameters, "
             f"{student.num_state_values():,} state-dict values")
    write_text(out_dir / FOOTPRINT_MARKDOWN_FILE, footprint_markdown(prints, title=title))
    report["files"] = {p.name: p.stat().st_size for p in sorted(out_dir.iterdir()) if p.is_file() and p.name != REPORT_FILE}
    report["contract"] = contract
    _write_json(out_dir / REPORT_FILE, report)
    return report


# the student and its graph


def torch_to_onnx(student: Student) -> onnx.ModelProto:
    """Export with ``torch.onnx.export(dynamo=True)``: batch and sample axes dynamic, BatchNorm folded.

    The dynamo exporter is used (not the TorchScript one): it folds BatchNorm into the convolutions,
    keeps the state-dict names on the weights and records each node's module, which is how the
    front-end is found for quantization.
    """
    example = torch.zeros(2, max(student.min_samples, SAMPLING_RATE) + 37)
    dims = ({0: torch.export.Dim("batch", min=1), 1: torch.export.Dim("samples", min=student.min_samples)},)
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()), _quiet_logging("torch.onnx"):
        warnings.simplefilter("ignore")
        program = torch.onnx.export(student.eval(), (example,), None, dynamo=True, input_names=[INPUT_NAME],
                                    output_names=[OUTPUT_NAME], dynamic_shapes=dims, opset_version=OPSET, verbose=False)
    proto = program.model_proto
    batch, samples = proto.graph.input[0].type.tensor_type.shape.dim
    batch.dim_param, samples.dim_param = "batch", "samples"
    proto.graph.output[0].type.tensor_type.shape.dim[0].dim_param = "batch"
    return proto


def frontend_nodes(proto: onnx.ModelProto) -> set[str]:
    """Names of the nodes computing the log-mel image (prenorm, DFT, power, mel, dB): every
    ancestor of the output of the module of class ``LogmelExtractor``, found in the exporter's
    per-node metadata."""
    graph = proto.graph
    inside = {n.name for n in graph.node
              if any(p.key == "pkg.torch.onnx.class_hierarchy" and "LogmelExtractor" in p.value for p in n.metadata_props)}
    if not inside:
        raise ValueError("cannot find the log-mel front-end (a LogmelExtractor module) in the exported graph")
    produced = {o for n in graph.node if n.name in inside for o in n.output}
    logmel = {i for n in graph.node if n.name not in inside for i in n.input if i in produced}
    producer = {o: n for n in graph.node for o in n.output}
    found, stack = set(), list(logmel)
    while stack:
        node = producer.get(stack.pop())
        if node is not None and node.name not in found:
            found.add(node.name)
            stack.extend(node.input)
    return found


def strip_metadata(proto: onnx.ModelProto) -> None:
    """Replace the exporter's notes (stack traces, fx nodes, the export signature: about half of a
    small file) by the contract in a few words."""
    graph = proto.graph
    for item in [*graph.node, *graph.input, *graph.output, *graph.initializer, graph, proto]:
        del item.metadata_props[:]
        item.doc_string = ""
    del graph.value_info[:]
    for key, value in (("labels", ",".join(LABELS)), ("sampling_rate", str(SAMPLING_RATE))):
        proto.metadata_props.add(key=key, value=value)


def _versions() -> dict:
    import onnxruntime

    return {"method": "torch.onnx.export(dynamo=True)", "opset": OPSET, "torch": torch.__version__,
            "onnx": onnx.__version__, "onnxruntime": onnxruntime.__version__}


# small files: constants computed in the graph


def compact_constants(proto: onnx.ModelProto) -> onnx.ModelProto:
    """A copy where the fixed DFT kernels are computed by a few nodes (cos and sin of an integer
    phase, times a Hann window, in float64) and mostly-zero matrices (the mel filterbank) are
    stored sparsely. onnxruntime folds both back into constants when the session starts, so the
    arithmetic at inference is unchanged; only the file shrinks."""
    proto = _copy(proto)
    graph = proto.graph
    kept, added_nodes, added_inits, sparse = [], [], [], []
    generated = {}
    for init in graph.initializer:
        value = numpy_helper.to_array(init) if init.data_type == TensorProto.FLOAT else None
        part = _dft_part(value) if value is not None else None
        if part is not None:
            n_fft = value.shape[2]
            if n_fft not in generated:
                generated[n_fft] = _dft_nodes(n_fft, added_nodes, added_inits)
            added_nodes.append(helper.make_node("Unsqueeze", [generated[n_fft][part], "dft_axis1"], [init.name]))
        elif value is not None and value.size >= 256 and np.count_nonzero(value) <= value.size // 4:
            index = np.flatnonzero(value)
            sparse.append(helper.make_sparse_tensor(numpy_helper.from_array(value.reshape(-1)[index], init.name),
                                                    numpy_helper.from_array(index.astype(np.int64)), list(value.shape)))
        else:
            kept.append(init)
    if generated:
        added_inits.append(numpy_helper.from_array(np.array([1], np.int64), "dft_axis1"))
    del graph.initializer[:]
    graph.initializer.extend(kept + added_inits)
    graph.sparse_initializer.extend(sparse)
    nodes = added_nodes + list(graph.node)
    del graph.node[:]
    graph.node.extend(nodes)
    return proto


def _dft_reference(n_fft: int) -> tuple[np.ndarray, np.ndarray]:
    """Re and Im of the DFT basis times a periodic Hann window, (n_fft // 2 + 1, n_fft), float64."""
    n = np.arange(n_fft)
    m = np.outer(np.arange(n_fft // 2 + 1), n) % n_fft
    window = 0.5 - 0.5 * np.cos(2 * np.pi * n / n_fft)
    return np.cos(2 * np.pi * m / n_fft) * window, -np.sin(2 * np.pi * m / n_fft) * window


def _dft_part(value: np.ndarray) -> str | None:
    """``real`` or ``imag`` when ``value`` is a (bins, 1, n_fft) windowed-DFT conv kernel, else None."""
    if value.ndim != 3 or value.shape[1] != 1 or value.shape[0] != value.shape[2] // 2 + 1 or value.shape[2] < 4:
        return None
    real, imag = _dft_reference(value.shape[2])
    for part, reference in (("real", real), ("imag", imag)):
        if np.abs(value[:, 0, :] - reference).max() <= 1e-6:
            return part
    return None


def _dft_nodes(n_fft: int, nodes: list, inits: list) -> dict[str, str]:
    """Append nodes computing the (bins, n_fft) real and imaginary kernels; returns their tensor names."""
    p = f"dft{n_fft}_"
    inits += [numpy_helper.from_array(np.array(v, dtype), p + name) for name, v, dtype in (
        ("zero", 0, np.int64), ("one", 1, np.int64), ("bins", n_fft // 2 + 1, np.int64), ("n", n_fft, np.int64),
        ("step", 2 * np.pi / n_fft, np.float64), ("half", 0.5, np.float64))]
    inits.append(numpy_helper.from_array(np.array([0], np.int64), p + "axis0"))
    make = helper.make_node
    nodes += [
        make("Range", [p + "zero", p + "bins", p + "one"], [p + "k"]),
        make("Range", [p + "zero", p + "n", p + "one"], [p + "t"]),
        make("Unsqueeze", [p + "k", "dft_axis1"], [p + "k2"]),
        make("Unsqueeze", [p + "t", p + "axis0"], [p + "t2"]),
        make("Mul", [p + "k2", p + "t2"], [p + "kt"]),
        make("Mod", [p + "kt", p + "n"], [p + "m"]),  # integer phase index keeps cos/sin exact for every bin
        make("Cast", [p + "m"], [p + "mf"], to=TensorProto.DOUBLE),
        make("Mul", [p + "mf", p + "step"], [p + "phase"]),
        make("Cast", [p + "t"], [p + "tf"], to=TensorProto.DOUBLE),
        make("Mul", [p + "tf", p + "step"], [p + "wphase"]),
        make("Cos", [p + "wphase"], [p + "wcos"]),
        make("Mul", [p + "wcos", p + "half"], [p + "whalf"]),
        make("Sub", [p + "half", p + "whalf"], [p + "window"]),  # periodic Hann
        make("Cos", [p + "phase"], [p + "cos"]),
        make("Sin", [p + "phase"], [p + "sin"]),
        make("Mul", [p + "cos", p + "window"], [p + "re64"]),
        make("Mul", [p + "sin", p + "window"], [p + "nim64"]),
        make("Neg", [p + "nim64"], [p + "im64"]),
        make("Cast", [p + "re64"], [p + "real"], to=TensorProto.FLOAT),
        make("Cast", [p + "im64"], [p + "imag"], to=TensorProto.FLOAT),
    ]
    return {"real": p + "real", "imag": p + "imag"}


# int8


def quantize(proto: onnx.ModelProto, frontend: set[str], clips: list[np.ndarray], *, per_channel: bool = False,
             activations: str = "auto") -> tuple[onnx.ModelProto, dict]:
    """Static int8 quantization of the network body (QDQ format); the front-end stays fp32.

    Layers with int8 activations are calibrated (min/max) on ``clips``; the weights of the other
    weighted layers are stored as int8 and dequantized to fp32 (see ``activations`` of
    :func:`export_onnx`). Returns the model and the choices made.
    """
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    weighted = _weighted_nodes(proto, frontend)
    full = [n for n, wide in weighted.items() if activations == "all" or wide]
    with tempfile.TemporaryDirectory() as tmp:
        src, dst = Path(tmp) / "fp32.onnx", Path(tmp) / "int8.onnx"
        _save(proto, src)
        if full:
            with warnings.catch_warnings(), _quiet_logging():
                warnings.simplefilter("ignore")
                quantize_static(str(src), str(dst), _ClipReader(clips), quant_format=QuantFormat.QDQ,
                                op_types_to_quantize=["Conv", "Gemm", "MatMul"], nodes_to_quantize=full,
                                per_channel=per_channel, activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                                calibrate_method=CalibrationMethod.MinMax)
            quantized = onnx.load(str(dst))
        else:
            quantized = _copy(proto)
    weight_only = [n for n in weighted if n not in full]
    quantize_weights(quantized, weight_only, per_channel=per_channel)
    return quantized, {"int8_activation_nodes": full, "int8_weight_only_nodes": weight_only,
                       "fp32_frontend_nodes": sorted(frontend), "calibration_method": "minmax" if full else None}


def _weighted_nodes(proto: onnx.ModelProto, frontend: set[str]) -> dict[str, bool]:
    """Conv, Gemm and MatMul nodes of the body with a stored weight -> whether they are wide enough
    for int8 activations to pay (``MIN_INT8_CHANNELS`` in and out per group)."""
    inits = {i.name: i for i in proto.graph.initializer}
    found = {}
    for node in proto.graph.node:
        if node.name in frontend or node.op_type not in ("Conv", "Gemm", "MatMul") or len(node.input) < 2:
            continue
        weight = inits.get(node.input[1])
        if weight is None:
            continue  # activation x activation products (the Gram matrix) stay fp32
        dims = list(weight.dims)
        if node.op_type == "Conv":
            c_out, c_in = dims[0], dims[1]
        else:
            trans_b = any(a.name == "transB" and a.i for a in node.attribute)
            c_in, c_out = (dims[1], dims[0]) if trans_b else (dims[0], dims[-1])
        found[node.name] = min(c_in, c_out) >= MIN_INT8_CHANNELS
    return found


def quantize_weights(proto: onnx.ModelProto, nodes: list[str], *, per_channel: bool = False) -> None:
    """Store the weight of each named node as symmetric int8 times an fp32 scale (per tensor, or per
    output channel), turned back into fp32 by a Cast and a Mul in the graph (in place)."""
    inits = {i.name: i for i in proto.graph.initializer}
    wanted = set(nodes)
    added_nodes, done = [], set()
    for node in list(proto.graph.node):
        if node.name not in wanted or node.input[1] in done:
            continue
        name = node.input[1]
        done.add(name)
        weight = numpy_helper.to_array(inits[name]).astype(np.float32)
        # the output-channel axis: 0 for Conv and a transposed Gemm weight, last for MatMul
        axis = 0 if node.op_type == "Conv" or any(a.name == "transB" and a.i for a in node.attribute) else weight.ndim - 1
        if per_channel:
            peak = np.abs(np.moveaxis(weight, axis, 0).reshape(weight.shape[axis], -1)).max(axis=1)
        else:
            peak = np.array(np.abs(weight).max())
        scale = (np.maximum(peak, 1e-12) / 127.0).astype(np.float32)
        shape = [1] * weight.ndim
        if per_channel:
            shape[axis] = -1
        q = np.clip(np.round(weight / scale.reshape(shape)), -127, 127).astype(np.int8)
        inputs = [name + "_q", name + "_scale"]
        proto.graph.initializer.remove(inits[name])
        proto.graph.initializer.extend([numpy_helper.from_array(q, inputs[0]),
                                        numpy_helper.from_array(scale.reshape(shape if per_channel else []), inputs[1])])
        # Cast and Mul rather than DequantizeLinear: onnxruntime folds these into an fp32 constant when the
        # session starts, so the layer runs the fast pre-packed fp32 kernel (a folded DequantizeLinear does not).
        added_nodes += [helper.make_node("Cast", [inputs[0]], [name + "_f"], to=TensorProto.FLOAT),
                        helper.make_node("Mul", [name + "_f", inputs[1]], [name])]
    nodes_all = added_nodes + list(proto.graph.node)
    del proto.graph.node[:]
    proto.graph.node.extend(nodes_all)


class _ClipReader:
    """onnxruntime CalibrationDataReader over clips, one per batch."""

    def __init__(self, clips):
        self.clips = iter(clips)

    def get_next(self):
        clip = next(self.clips, None)
        return None if clip is None else {INPUT_NAME: clip[None].astype(np.float32)}


@contextlib.contextmanager
def _quiet_logging(name: str | None = None):
    """Silence a logger below ERROR (the exporter warns about torchvision, the quantizer logs a
    pre-processing hint on every call)."""
    import logging

    logger = logging.getLogger(name)
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


# calibration and check audio


def calibration_clips(source, *, clip_seconds: float = 2.0, max_clips: int = 256, holdout: float = 0.25, seed: int = 0,
                      progress: bool = False) -> tuple[list[np.ndarray], list[np.ndarray], dict]:
    """(calibration clips, held-out clips, description) from an audio folder or a label store.

    Files are split by :func:`wav2small.holdout.held_out`: a ``holdout`` fraction (at least one
    file) is used only for checking. From an audio folder, each file gives consecutive crops of
    ``clip_seconds`` (a shorter file gives itself); from a label store, each row's view is rendered
    as the teacher heard it. Each side's files are read in an order shuffled with ``seed`` (so that
    the budget draws across the whole corpus) until it has its share of ``max_clips``. A file that
    cannot be read (or a store row that cannot be rendered, see ``LabelStore.check_view``) is
    recorded in the description's ``skipped`` and the next one is read.
    """
    from .progress import progress_bar

    root = Path(source)
    if is_label_store(root):
        from .views import render_view

        store = LabelStore(root)
        rows = store.read(columns=["file", "params"])
        views = rows.groupby("file", sort=True)["params"].apply(list)
        files = list(views.index)
        kind = "label store"

        def clips_of(file):
            return [render_view(store.check_view(p)) for p in views[file]]
    else:
        files = [str(f) for f in find_audio_files(root)]
        kind = "audio folder"

        def clips_of(file):
            x = read_segment(file)
            n = int(clip_seconds * SAMPLING_RATE)
            return [x] if len(x) <= n else [x[i:i + n] for i in range(0, len(x) - n + 1, n)]
    if len(files) < 2:
        raise ValueError(f"{root}: calibration needs at least 2 audio files ({len(files)} found): some calibrate, some check")
    checking = held_out(files, holdout, salt=CALIBRATION_SALT)
    order = [files[i] for i in np.random.default_rng(seed).permutation(len(files))]
    held_files, calib_files = [f for f in order if f in checking], [f for f in order if f not in checking]
    budget = {"calibration": max(1, int(round(max_clips * (1 - holdout)))), "held_out": max(1, int(round(max_clips * holdout)))}
    out, used, skipped = {}, {}, {}
    for split, split_files in (("calibration", calib_files), ("held_out", held_files)):
        clips, used[split] = [], []
        for file in progress_bar(split_files, desc=f"read {split}", unit="file", disable=not progress):
            try:
                clips.extend(clips_of(file))
            except AudioError as error:
                skipped[error.source] = error.problem
                continue
            used[split].append(file)
            if len(clips) >= budget[split]:
                break
        out[split] = clips[: budget[split]]
    if len(out["held_out"]) < MIN_HELD_OUT:
        raise ValueError(f"{root}: only {len(out['held_out'])} held-out clips for the int8 check from {len(held_files)} files; "
                         f"give more audio or a larger --holdout (at least {MIN_HELD_OUT} clips)")
    info = {"source": str(root), "kind": kind, "clip_seconds": clip_seconds, "skipped": skipped}
    for split in out:
        info.update({f"{split}_files": len(used[split]), f"{split}_clips": len(out[split]),
                     f"{split}_seconds": round(sum(len(c) for c in out[split]) / SAMPLING_RATE, 2),
                     f"{split}_file_list": sorted(used[split])})
    return out["calibration"], out["held_out"], info


# checks


def check_against_torch(student: Student, onnx_path, *, atol: float = 1e-4, checks=FP32_CHECKS, seed: int = 0) -> dict:
    """Largest |ONNX - torch| over ``checks`` ((batch, seconds) pairs; default 1 to 30 s), signals of mixed gain."""
    onnx_model, torch_model = OnnxRunner(onnx_path), TorchRunner(student)
    rng = np.random.default_rng(seed)
    cases = []
    for batch, seconds in checks:
        n = int(round(seconds * SAMPLING_RATE))
        x = (rng.standard_normal((batch, n)) * 10.0 ** rng.uniform(-3, 0, (batch, 1))).astype(np.float32)
        x += np.sin(2 * np.pi * rng.uniform(80, 400, (batch, 1)) * np.arange(n) / SAMPLING_RATE).astype(np.float32)
        diff = float(np.abs(onnx_model(x) - torch_model(x)).max())
        cases.append({"batch": batch, "samples": n, "max_abs_diff": diff})
    worst = max(c["max_abs_diff"] for c in cases)
    return {"max_abs_diff": worst, "tolerance": atol, "passed": bool(worst <= atol), "cases": cases}


def compare_outputs(reference_path, candidate_path, clips: list[np.ndarray], *, min_pearson: float = 0.99,
                    min_ccc: float = 0.98) -> dict:
    """Pearson and CCC per dimension between two ONNX models' outputs on ``clips``."""
    outputs = [run_clips(OnnxRunner(path), clips) for path in (reference_path, candidate_path)]
    ref, cand = outputs
    pearson = dict(zip(LABELS, np.round(np.atleast_1d(pearson_cc(ref, cand)).astype(float), 5).tolist()))
    ccc = dict(zip(LABELS, np.round(np.atleast_1d(concordance_cc(ref, cand)).astype(float), 5).tolist()))
    passed = all(pearson[k] >= min_pearson and ccc[k] >= min_ccc for k in LABELS)
    return {"clips": len(clips), "pearson": pearson, "ccc": ccc, "max_abs_diff": float(np.abs(ref - cand).max()),
            "reference_std": dict(zip(LABELS, np.round(ref.std(axis=0), 5).tolist())),
            "thresholds": {"pearson": min_pearson, "ccc": min_ccc}, "passed": bool(passed)}


# the folder around the model


def gain_floor_db(eps: float) -> float:
    """The input RMS level (dBFS) above which the prenorm's ``eps`` moves outputs by less than about
    0.002 on the 0..1 scale: 10 log10(100 eps), where eps is 1 % of the clip's power (measured with
    bench/gain_invariance.py: 0.0017 there, 0.01 at 8 dB below, 0.1 at 20 dB below)."""
    return 10 * math.log10(100 * eps)


def write_contract(out_dir, student: Student) -> dict:
    """Write ``contract.json`` and ``CONTRACT.md``: what goes in, what comes out, and where that stops
    holding (quiet input, NaN)."""
    out_dir = Path(out_dir)
    eps = float(getattr(student.config, "prenorm_eps", PRENORM_EPS))
    floor = round(gain_floor_db(eps), 1)
    contract = {
        "input": {"name": INPUT_NAME, "dtype": "float32", "shape": ["batch", "samples"], "dynamic_axes": [0, 1],
                  "sampling_rate": SAMPLING_RATE, "channels": "mono", "min_samples": int(student.min_samples),
                  "gain": f"any above {floor:g} dBFS RMS: each clip is normalised to zero mean and unit power inside the model",
                  "prenorm_eps": eps, "gain_invariant_above_dbfs": floor,
                  "nan": "a NaN or infinite sample makes that clip's whole output NaN (other clips of the batch are unaffected)"},
        "output": {"name": OUTPUT_NAME, "dtype": "float32", "shape": ["batch", 3], "labels": list(LABELS),
                   "scale": "nominally 0..1 (MSP-Podcast 1..7 ratings mapped by (y - 1) / 6), no activation, not clipped"},
        "files": {"fp32": FP32_FILE, "int8": INT8_FILE if (out_dir / INT8_FILE).exists() else None,
                  "audonnx": {k: v[0] for k, v in AUDONNX_FILES.items() if (out_dir / v[1]).exists()}},
        "architecture": student.architecture,
    }
    _write_json(out_dir / CONTRACT_FILE, contract)
    i, o = contract["input"], contract["output"]
    write_text(out_dir / CONTRACT_MARKDOWN_FILE, f"""# ONNX contract: {student.architecture}

| | name | dtype | shape | meaning |
|---|---|---|---|---|
| input | `{i['name']}` | float32 | (batch, samples), both dynamic | mono waveform at {SAMPLING_RATE} Hz, any gain, at least {i['min_samples']} samples |
| output | `{o['name']}` | float32 | (batch, 3) | {', '.join(LABELS)}: {o['scale']} |

- Clips in one batch must have the same length: the model has no padding mask, and zero padding
  changes the result. Run clips of different lengths one by one or in equal-length groups.
- Silence or any constant signal gives one fixed output (the answer to an empty spectrum), not a
  neutral rating.
- Gain: outputs do not depend on the input's gain while the clip's RMS is above {floor:g} dBFS (changes
  below 0.002 on the 0..1 scale). Below, the normalisation's epsilon ({eps:g}, added to the clip's power)
  is no longer negligible and outputs drift towards the silence output: by about 0.01 at {floor - 8:g} dBFS,
  0.1 at {floor - 20:g} dBFS, and far below (a speech clip times 1e-30) they are the silence output. Peaks
  above about 1e18 (a clip times 1e20) overflow float32 and also give the silence output (wav2small
  refuses samples above 1e12 before they reach a model). A model folder whose config.json
  sets `prenorm_eps` to 1e-14 keeps invariance down to -120 dBFS (outputs at -20 dBFS change by about
  2e-6, at -50 dBFS by 0.002); the published card uses 1e-7.
- NaN or infinite samples: that clip's whole output is NaN (the normalisation spreads them over the
  clip); other clips of the batch are unaffected. Check inputs with `numpy.isfinite` first.
- `{FP32_FILE}` is the reference. `{INT8_FILE}` (if present) stores the network weights as int8 and
  keeps the log-mel front-end in fp32; its agreement with fp32 on held-out audio is in `report.json`.
- audonnx: `audonnx.load(DIR)` reads `model.yaml` (`model.audonnx.onnx`: the same graph with the batch
  axis fixed to 1, since audonnx allows one dynamic axis); for int8, `audonnx.load(DIR, model_file="model.int8.yaml")`.
  Call it with a 1-D signal: `model(signal, {SAMPLING_RATE})` -> (1, 3).
- onnxruntime: `session.run(["{o['name']}"], {{"{i['name']}": x}})` with `x` float32 of shape (batch, samples).
""")
    return contract


def write_audonnx_view(out_dir, model_file: str) -> None:
    """Write the audonnx YAML and its batch-1 copy of ``model_file`` (see ``AUDONNX_FILES``)."""
    out_dir = Path(out_dir)
    yaml_name, onnx_name = AUDONNX_FILES[model_file]
    proto = onnx.load(str(out_dir / model_file))
    for value in (proto.graph.input[0], proto.graph.output[0]):
        value.type.tensor_type.shape.dim[0].dim_value = 1
    _save(proto, out_dir / onnx_name)
    labels = "".join(f"  - {label}\n" for label in LABELS)
    write_text(out_dir / yaml_name, f"{AUDONNX_FORMAT}:\n  path: {onnx_name}\n  labels:\n{labels}  transform: null\n")


def _save(proto: onnx.ModelProto, path) -> None:
    with atomic_path(path) as tmp:
        onnx.save_model(proto, str(tmp), save_as_external_data=False)


def _copy(proto: onnx.ModelProto) -> onnx.ModelProto:
    copy = onnx.ModelProto()
    copy.CopyFrom(proto)
    return copy


def _write_json(path, data) -> None:
    write_json(path, data, default=_json_default)


def _json_default(value):
    if isinstance(value, (np.floating, np.integer)):
        return value.item()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")
