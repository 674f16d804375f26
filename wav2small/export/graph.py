"""From a torch student to a small ONNX graph: the dynamo export, the front-end's nodes (kept fp32 by
quantization), metadata stripped to the contract, and constants computed in the graph (the DFT
kernels) or stored sparsely (the mel matrix), so that a tiny model's file is small.
"""

from __future__ import annotations

import contextlib
import io
import warnings

import numpy as np
import onnx
import torch
from onnx import TensorProto, helper, numpy_helper

from ..atomic import atomic_path
from ..contract import INPUT_NAME, LABELS, OUTPUT_NAME, SAMPLING_RATE
from ..frontend import dft_basis
from ..models import Student

OPSET = 18


def torch_to_onnx(student: Student) -> onnx.ModelProto:
    """Export with ``torch.onnx.export(dynamo=True)``: batch and sample axes dynamic, BatchNorm folded.

    The dynamo exporter is used (not the TorchScript one): it folds BatchNorm into the convolutions,
    keeps the state-dict names on the weights and records each node's module, which is how the
    front-end is found for quantization.
    """
    example = torch.zeros(2, max(student.min_samples, SAMPLING_RATE) + 37)
    dims = ({0: torch.export.Dim("batch", min=1), 1: torch.export.Dim("samples", min=student.min_samples)},)
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()), quiet_logging("torch.onnx"):
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


def exporter_versions() -> dict:
    import onnxruntime

    return {"method": "torch.onnx.export(dynamo=True)", "opset": OPSET, "torch": torch.__version__,
            "onnx": onnx.__version__, "onnxruntime": onnxruntime.__version__}


# small files: constants computed in the graph


def compact_constants(proto: onnx.ModelProto) -> onnx.ModelProto:
    """A copy where the fixed DFT kernels are computed by a few nodes (cos and sin of an integer
    phase, times a Hann window, in float64), so is a large decay matrix of the running prenorm
    (a^(i - j) below the diagonal), and mostly-zero matrices (the mel filterbank) are stored
    sparsely. onnxruntime folds all of them back into constants when the session starts, so the
    arithmetic at inference is unchanged; only the file shrinks."""
    proto = copy_model(proto)
    graph = proto.graph
    kept, added_nodes, added_inits, sparse = [], [], [], []
    generated = {}
    for init in graph.initializer:
        if init.data_type == TensorProto.DOUBLE and _decay_factor(numpy_helper.to_array(init)) is not None:
            added_nodes += _decay_nodes(init.name, numpy_helper.to_array(init), added_inits)
            continue
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


def _decay_factor(value: np.ndarray, min_size: int = 64) -> float | None:
    """``a`` when ``value`` is a square matrix of at least ``min_size`` rows holding a^(i - j) on and
    below the diagonal and 0 above (the running prenorm's average over a segment), else None."""
    if value.ndim != 2 or value.shape[0] != value.shape[1] or value.shape[0] < min_size or not 0 < value[1, 0] < 1:
        return None
    lag = np.subtract.outer(np.arange(len(value)), np.arange(len(value)))
    reference = np.where(lag >= 0, value[1, 0] ** np.maximum(lag, 0), 0.0)
    return float(value[1, 0]) if np.abs(value - reference).max() <= 1e-12 else None


def _decay_nodes(name: str, value: np.ndarray, inits: list) -> list:
    """Nodes computing the decay matrix ``value`` (see :func:`_decay_factor`) as exp(lag * ln a) where
    lag = i - j >= 0, in float64, into the tensor ``name``."""
    size, a = len(value), float(value[1, 0])
    p = f"{name}_"
    inits += [numpy_helper.from_array(np.array(v, np.float64), p + key) for key, v in
              (("zero", 0.0), ("size", float(size)), ("one", 1.0), ("log_a", np.log(a)))]
    inits += [numpy_helper.from_array(np.array([axis], np.int64), p + f"axis{axis}") for axis in (0, 1)]
    make = helper.make_node
    return [
        make("Range", [p + "zero", p + "size", p + "one"], [p + "k"]),
        make("Unsqueeze", [p + "k", p + "axis1"], [p + "rows"]),
        make("Unsqueeze", [p + "k", p + "axis0"], [p + "columns"]),
        make("Sub", [p + "rows", p + "columns"], [p + "lag"]),
        make("GreaterOrEqual", [p + "lag", p + "zero"], [p + "below"]),
        make("Mul", [p + "lag", p + "log_a"], [p + "log_value"]),
        make("Exp", [p + "log_value"], [p + "value"]),
        make("Where", [p + "below", p + "value", p + "zero"], [name]),
    ]


def _dft_part(value: np.ndarray) -> str | None:
    """``real`` or ``imag`` when ``value`` is a (bins, 1, n_fft) windowed-DFT conv kernel, else None."""
    if value.ndim != 3 or value.shape[1] != 1 or value.shape[0] != value.shape[2] // 2 + 1 or value.shape[2] < 4:
        return None
    real, imag = dft_basis(value.shape[2])  # the front-end's own kernels, before float32
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


# files and logs


def save_model(proto: onnx.ModelProto, path) -> None:
    with atomic_path(path) as tmp:
        onnx.save_model(proto, str(tmp), save_as_external_data=False)


def copy_model(proto: onnx.ModelProto) -> onnx.ModelProto:
    copy = onnx.ModelProto()
    copy.CopyFrom(proto)
    return copy


@contextlib.contextmanager
def quiet_logging(name: str | None = None):
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
