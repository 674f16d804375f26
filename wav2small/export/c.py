"""A streaming int8 Wav2Small as a self-contained C99 bundle for microcontrollers.

The bundle is generated from an int8 (QDQ) ONNX graph of a Wav2Small student: its quantised
weights, scales and zero points become ``const`` arrays (``w2s_model.c``), its sizes compile-time
constants (``w2s_config.h``); the streaming engine and the int8 kernels are fixed C sources shipped
with the package (``csrc/``). Integer arithmetic follows onnxruntime's int8 operators exactly; the
front-end and the attention sums are single-precision float.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import numpy as np
import onnx
from onnx import numpy_helper

from ..contract import SAMPLING_RATE, STATE_NAMES, STREAM_INT8_FILE, STREAM_METADATA

CSRC = Path(__file__).parent / "csrc"
#: fixed sources copied into every bundle (paths relative to CSRC)
SOURCES = ("w2s.h", "w2s.c", "w2s_kernels.h", "w2s_kernels.c", "w2s_math.h", "w2s_math.c", "w2s_main.c",
           "cortex-m4/startup.c", "cortex-m4/link.ld", "cortex-m4/firmware.c")
GENERATED = ("w2s_config.h", "w2s_model.c")
#: operators of other students (MobileNet's hard activations and pooling, normalisation, recurrent
#: and attention layers) that the C engine has no kernel for
FOREIGN_OPS = {
    "HardSwish", "HardSigmoid", "Sigmoid", "Tanh", "GlobalAveragePool", "AveragePool", "GlobalMaxPool", "LeakyRelu", "Elu",
    "Gelu", "Erf", "Softplus", "PRelu", "Resize", "Upsample", "ConvTranspose", "BatchNormalization", "LayerNormalization",
    "InstanceNormalization", "GroupNormalization", "LSTM", "GRU", "RNN", "Attention", "MultiHeadAttention",
}
#: most channels per layer (the kernels keep one row's sums on the stack)
MAX_CHANNELS = 64
#: exactness bound of the 1.5 * 2^23 rounding trick in the kernels' output stage
ROUNDING_LIMIT = 2.0**22


class CExportError(ValueError):
    """The graph is not one the C bundle can be made from; the message says what is missing."""


@dataclasses.dataclass
class QuantConv:
    """One quantised convolution (or the head's Gemm) as onnxruntime runs it fused (QLinearConv)."""

    weight: np.ndarray  # int8 (c_out, c_in, kt, km); the head: (3, features, 1, 1)
    bias: np.ndarray  # int32 (c_out,) at scale x_scale * w_scale
    x_scale: np.float32
    x_zero: int
    w_scale: np.ndarray  # float32 (c_out,)
    y_scale: np.float32
    y_zero: int
    lut: np.ndarray | None = None  # uint8 (256,): output -> the next layer's input quantisation
    next_zero: int = 0

    @property
    def scale(self) -> np.ndarray:
        """Requantisation multiplier per output channel, float32 (x_scale * w_scale) / y_scale as
        onnxruntime computes it."""
        return ((self.x_scale * self.w_scale.astype(np.float32)).astype(np.float32) / self.y_scale).astype(np.float32)


@dataclasses.dataclass
class Network:
    """Everything the C engine needs, read from an int8 ONNX graph."""

    channels: int
    n_mels: int
    n_fft: int
    hop: int
    frames_per_chunk: int
    prenorm_carry: np.ndarray  # float32 (frames_per_chunk,) a^(k+1)
    prenorm_mix: np.ndarray  # float32 (frames_per_chunk, frames_per_chunk) a^(k-j), lower triangle
    prenorm_gain: np.float32  # 1 - a
    prenorm_eps: np.float32  # added to the running variance before the square root
    dft_real: np.ndarray  # float32 (bins, n_fft)
    dft_imag: np.ndarray
    mel: np.ndarray  # float32 (bins, n_mels)
    logmel_scale: np.float32
    logmel_zero: int
    convs: list  # 7 QuantConv, l1 .. l7
    pool_zero: int
    pool_lut: np.ndarray | None
    pool_next_zero: int
    lin: QuantConv
    sof: QuantConv
    decay: float
    head: QuantConv  # weight (3, features, 1, 1); x: the features' quantisation
    out_scale: np.float32

    def macs_per_second(self, sampling_rate: int = 16000) -> int:
        """Multiply-accumulates per second of audio of the streamed computation (each frame and
        position once): DFT, mel, the convolutions, lin and sof; the read-out's head is not counted."""
        frames = sampling_rate / self.hop
        bins, m2, c = self.n_fft // 2 + 1, (self.n_mels + 1) // 2, self.channels
        per_frame = 2 * bins * self.n_fft + bins * self.n_mels + self.n_mels * c * 9 + 2 * self.n_mels * c * c * 9
        per_pooled = 4 * m2 * c * c * 9 + 2 * m2 * c * c
        return int(round(frames * per_frame + frames / 2 * per_pooled))


# reading the graph


class _Graph:
    def __init__(self, proto: onnx.ModelProto):
        graph = proto.graph
        self.values = {i.name: numpy_helper.to_array(i) for i in graph.initializer}
        for sparse in graph.sparse_initializer:
            dense = np.zeros(int(np.prod(sparse.dims)), onnx.helper.tensor_dtype_to_np_dtype(sparse.values.data_type))
            dense[numpy_helper.to_array(sparse.indices).reshape(-1)] = numpy_helper.to_array(sparse.values)
            self.values[sparse.values.name] = dense.reshape(list(sparse.dims))
        for node in graph.node:
            if node.op_type == "Constant":
                self.values[node.output[0]] = numpy_helper.to_array(node.attribute[0].t)
        self.nodes = list(graph.node)
        self.producer = {o: n for n in self.nodes for o in n.output}
        self.consumers = {}
        for node in self.nodes:
            for name in node.input:
                self.consumers.setdefault(name, []).append(node)

    def attr(self, node, name, default=None):
        for a in node.attribute:
            if a.name == name:
                return onnx.helper.get_attribute_value(a)
        return default

    def dequantized(self, name):
        """(quantised tensor name, scale, zero point) of a DequantizeLinear output, else None."""
        node = self.producer.get(name)
        if node is None or node.op_type != "DequantizeLinear":
            return None
        scale = self.values[node.input[1]]
        zero = self.values[node.input[2]] if len(node.input) > 2 and node.input[2] else np.zeros((), np.uint8)
        return node.input[0], scale, zero

    def quantizer(self, name):
        """The QuantizeLinear reading ``name`` (its only reader), else None."""
        readers = self.consumers.get(name, [])
        if len(readers) == 1 and readers[0].op_type == "QuantizeLinear":
            return readers[0]
        return None

    def q_params(self, node):
        scale = np.float32(self.values[node.input[1]])
        zero = self.values[node.input[2]] if len(node.input) > 2 and node.input[2] else np.zeros((), np.uint8)
        if zero.dtype != np.uint8:
            raise CExportError(f"activation {node.input[0]!r} is quantised as {zero.dtype}: the C engine takes uint8 "
                               "activations (export with uint8 activations)")
        return scale, int(zero)


def _quant_conv(g: _Graph, node) -> QuantConv:
    """Weights, bias and quantisation of a Conv or Gemm whose weight is a dequantised int8 tensor."""
    x = g.dequantized(node.input[0])
    w = g.dequantized(node.input[1])
    if x is None:
        raise CExportError(f"{node.op_type} {node.name!r} has float input activations: the C engine needs int8 activations "
                           "in every layer of the network body (export with --activations all)")
    w_q = g.values[w[0]]
    if w_q.dtype != np.int8 or np.any(w[2] != 0):
        raise CExportError(f"{node.op_type} {node.name!r}: weights must be symmetric int8")
    bias = np.zeros(w_q.shape[0], np.int32)
    if len(node.input) > 2 and node.input[2]:
        b = g.dequantized(node.input[2])
        if b is None or g.values[b[0]].dtype != np.int32:
            raise CExportError(f"{node.op_type} {node.name!r}: bias is not int32-quantised")
        bias = g.values[b[0]].astype(np.int32).reshape(-1)
    out_q = g.quantizer(node.output[0])
    if out_q is None:
        raise CExportError(f"{node.op_type} {node.name!r}: output is not quantised")
    x_scale, x_zero = g.q_params(g.producer[x[0]]) if x[0] in g.producer and g.producer[x[0]].op_type == "QuantizeLinear" \
        else (np.float32(x[1]), int(x[2]))
    y_scale, y_zero = g.q_params(out_q)
    w_scale = np.broadcast_to(np.asarray(w[1], np.float32).reshape(-1), (w_q.shape[0],)).astype(np.float32)
    if node.op_type == "Gemm":
        if not g.attr(node, "transB", 0):
            w_q = w_q.T
        w_q = w_q[:, :, None, None]
    return QuantConv(np.ascontiguousarray(w_q), bias, np.float32(x_scale), int(x_zero), w_scale, y_scale, y_zero)


def requantisation_table(scale_in, zero_in, scale_out, zero_out, relu: bool) -> np.ndarray:
    """uint8 q -> QuantizeLinear(Relu?(DequantizeLinear(q))) in float32, as onnxruntime computes it."""
    x = (np.arange(256, dtype=np.int32) - zero_in).astype(np.float32) * np.float32(scale_in)
    if relu:
        x = np.maximum(x, np.float32(0))
    q = np.rint((x / np.float32(scale_out)).astype(np.float32)) + zero_out
    return np.clip(q, 0, 255).astype(np.uint8)


def stream_info(proto: onnx.ModelProto) -> dict:
    """The streaming record of a graph's metadata (chunk, hop, n_fft, prenorm and decay seconds,
    states), or a CExportError saying the graph is not a streaming export."""
    meta = {p.key: p.value for p in proto.metadata_props}
    names = {i.name for i in proto.graph.input}
    missing = [n for n in STATE_NAMES if n not in names]
    if STREAM_METADATA not in meta or missing:
        raise CExportError("not a streaming export of wav2small: " + (f"no state input(s) {', '.join(missing)}" if missing else
                           f"no {STREAM_METADATA!r} metadata") + " (export with --streaming --int8 --activations all)")
    return json.loads(meta[STREAM_METADATA])


def evaluate(proto: onnx.ModelProto, names, info: dict) -> list[np.ndarray]:
    """Values of tensors the graph computes from its constants (the DFT basis), as onnxruntime
    computes them: one run of a copy with them as outputs, on a silent chunk and the initial state."""
    import onnxruntime

    model = onnx.ModelProto()
    model.CopyFrom(proto)
    for name in names:
        model.graph.output.append(onnx.helper.make_empty_tensor_value_info(name))
    feeds = {i.name: np.zeros([d.dim_value for d in i.type.tensor_type.shape.dim],
                              onnx.helper.tensor_dtype_to_np_dtype(i.type.tensor_type.elem_type)) for i in proto.graph.input}
    for name, state in info["states"].items():
        feeds[name] = np.full(state["shape"], state["initial"], state["dtype"])
    session = onnxruntime.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(list(names), feeds)


def read_network(proto: onnx.ModelProto) -> Network:
    """The C engine's view of a streaming Wav2Small int8 (QDQ) graph.

    Raises:
        CExportError: an operator the engine cannot express, a graph that is not a streaming
            export, or one without int8 activations in every layer of the network body.
    """
    g = _Graph(proto)
    for node in g.nodes:
        if node.op_type in FOREIGN_OPS:
            raise CExportError(f"the C engine cannot express operator {node.op_type} (node {node.name!r}); it runs "
                               "Wav2Small students only")
        if node.op_type == "Conv" and g.attr(node, "group", 1) != 1:
            raise CExportError(f"the C engine cannot express operator Conv with group={g.attr(node, 'group')} (node "
                               f"{node.name!r}: a depthwise or grouped convolution); it runs Wav2Small students only")
    info = stream_info(proto)
    quantised = [n for n in g.nodes if n.op_type in ("Conv", "Gemm") and g.dequantized(n.input[1]) is not None]
    if not quantised:
        raise CExportError("no int8 layers: the graph has no DequantizeLinear weights; export it with --int8")
    convs3 = [n for n in quantised if n.op_type == "Conv" and list(g.values[g.dequantized(n.input[1])[0]].shape[2:]) == [3, 3]]
    convs1 = [n for n in quantised if n.op_type == "Conv" and list(g.values[g.dequantized(n.input[1])[0]].shape[2:]) == [1, 1]]
    gemms = [n for n in quantised if n.op_type == "Gemm"]
    if len(convs3) != 7 or len(convs1) != 2 or len(gemms) != 1:
        raise CExportError(f"expected Wav2Small's 7 quantised 3x3 convolutions, 2 1x1 convolutions and a quantised head, "
                           f"found {len(convs3)}, {len(convs1)} and {len(gemms)} (export with --activations all)")
    convs = [_quant_conv(g, n) for n in convs3]
    ones = [_quant_conv(g, n) for n in convs1]
    if sum(n.op_type == "Relu" for n in g.nodes) < len(convs):
        raise CExportError("expected a ReLU after every 3x3 convolution")
    pools = [n for n in g.nodes if n.op_type == "MaxPool"]
    if len(pools) != 1:
        raise CExportError(f"expected one max-pool in the network body, found {len(pools)}")
    # The max-pool runs on uint8 values: on its own input's quantisation if the graph quantises
    # it, else on l4's (a maximum commutes with the monotone QuantizeLinear).
    pool_in = g.dequantized(pools[0].input[0])
    pool_scale, pool_zero = (np.float32(pool_in[1]), int(pool_in[2])) if pool_in else (convs[3].x_scale, convs[3].x_zero)
    # each layer's output stage maps, through ReLU, onto the next layer's input quantisation
    targets = [(c.x_scale, c.x_zero) for c in convs[1:3]] + [(pool_scale, pool_zero)] + \
              [(c.x_scale, c.x_zero) for c in convs[4:]] + [(ones[0].x_scale, ones[0].x_zero)]
    for conv, (scale, zero) in zip(convs, targets):
        conv.lut = requantisation_table(conv.y_scale, conv.y_zero, scale, zero, relu=True)
        conv.next_zero = zero
    pool_lut = requantisation_table(pool_scale, pool_zero, convs[3].x_scale, convs[3].x_zero, relu=False)
    pool_lut = None if np.array_equal(pool_lut, np.arange(256)) else pool_lut
    pool_next_zero = convs[3].x_zero
    # lin and sof: by their weights' names (the state-dict names survive the export), else by the
    # softmax that reads sof's output
    sof_side = [_is_softmax_logit(g, n) for n in convs1]
    if sof_side.count(True) != 1:
        raise CExportError("cannot tell the attention values (lin) from the logits (sof)")
    sof, lin = (ones[0], ones[1]) if sof_side[0] else (ones[1], ones[0])
    head = _quant_conv(g, gemms[0])
    out_q = g.quantizer(gemms[0].output[0])
    out_scale, _ = g.q_params(out_q)
    channels = convs[0].weight.shape[0]
    if channels > MAX_CHANNELS:
        raise CExportError(f"{channels} channels: the C kernels take at most {MAX_CHANNELS}")
    dft = [n for n in g.nodes if n.op_type == "Conv" and n not in quantised]
    if len(dft) != 2:
        raise CExportError(f"expected the two DFT convolutions of the log-mel front-end, found {len(dft)}")
    n_fft, hop, chunk = int(info["n_fft"]), int(info["hop"]), int(info["chunk"])
    if n_fft != 2 * hop or chunk % (2 * hop):
        raise CExportError(f"the C engine needs n_fft = 2 hop and a chunk of whole pairs of hops (got n_fft {n_fft}, "
                           f"hop {hop}, chunk {chunk})")
    real, imag = (w.reshape(w.shape[0], -1).astype(np.float32) for w in evaluate(proto, [d.input[1] for d in dft], info))
    mel = next((v for v in g.values.values() if v.ndim == 2 and v.dtype == np.float32 and v.shape[0] == n_fft // 2 + 1), None)
    if mel is None:
        raise CExportError("no mel filterbank (bins x n_mels) in the graph")
    first_q = g.producer[g.dequantized(convs3[0].input[0])[0]]
    logmel_scale, logmel_zero = g.q_params(first_q)
    frames = chunk // hop
    # the running prenorm's constants: s_k = (1 - a) (within @ v)_k + powers_k s_before
    within = next((v for v in g.values.values() if v.shape == (frames, frames) and v.dtype == np.float32
                   and np.all(np.triu(v, 1) == 0) and np.all(np.diag(v) == 1)), None)
    matmul = next((n for n in g.nodes if n.op_type == "MatMul" and within is not None and g.values.get(n.input[0]) is within), None)
    gain = next((g.values[r.input[1]] for r in g.consumers.get(matmul.output[0], []) if r.op_type == "Mul"
                 and r.input[1] in g.values), None) if matmul is not None else None
    powers = next((g.values[n.input[0]] for n in g.nodes if n.op_type == "Mul" and n.input[0] in g.values
                   and g.values[n.input[0]].size == frames and g.producer.get(n.input[1]) is not None
                   and "prenorm_stats" in g.producer[n.input[1]].input), None)
    if within is None or gain is None or powers is None:
        raise CExportError("cannot find the running prenorm's constants in the graph")
    eps = prenorm_eps(g)
    pooled_seconds = 2 * hop / SAMPLING_RATE
    decay = pooled_seconds / info["decay_seconds"] if info.get("decay_seconds") else 0.0
    return Network(channels=channels, n_mels=mel.shape[1], n_fft=n_fft, hop=hop, frames_per_chunk=frames,
                   prenorm_carry=powers.reshape(-1).astype(np.float32), prenorm_mix=within,
                   prenorm_gain=np.float32(gain), prenorm_eps=eps, dft_real=real, dft_imag=imag, mel=mel.astype(np.float32),
                   logmel_scale=logmel_scale, logmel_zero=logmel_zero, convs=convs, pool_zero=pool_zero,
                   pool_lut=pool_lut, pool_next_zero=pool_next_zero, lin=lin, sof=sof, decay=decay, head=head,
                   out_scale=out_scale)


def prenorm_eps(g: _Graph) -> np.float32:
    """The prenorm's eps: the constant added to the variance before the graph's one square root."""
    adds = [g.producer.get(n.input[0]) for n in g.nodes if n.op_type == "Sqrt"]
    eps = [g.values[i] for a in adds if a is not None and a.op_type == "Add" for i in a.input
           if i in g.values and g.values[i].size == 1]
    if len(adds) != 1 or len(eps) != 1:
        raise CExportError("cannot find the running prenorm's eps (one square root of the variance plus a constant)")
    return np.float32(eps[0].reshape(()))


def _is_softmax_logit(g: _Graph, conv_node) -> bool:
    """Whether a quantised 1x1 conv computes the attention logits (sof): its weight is named so, or
    its dequantised output reaches a softmax (Softmax, or the online softmax's ReduceMax) within
    a few layout, slice and masking ops."""
    weight = g.dequantized(conv_node.input[1])[0]
    if ".sof." in weight or ".lin." in weight:
        return ".sof." in weight
    q = g.quantizer(conv_node.output[0])
    names = [r.output[0] for r in g.consumers.get(q.output[0], []) if r.op_type == "DequantizeLinear"]
    for _ in range(4):
        readers = [r for name in names for r in g.consumers.get(name, [])]
        if any(r.op_type in ("Softmax", "ReduceMax") for r in readers):
            return True
        names = [r.output[0] for r in readers if r.op_type in ("Transpose", "Reshape", "Slice", "Where", "Sub")]
    return False


# writing the bundle


def pack_conv_weight(weight: np.ndarray) -> tuple[np.ndarray, int]:
    """int8 (c_out, c_in, kt, km) -> the byte order of w2s_conv_row, and the run.

    Per pair of output channels, per time tap: groups of 4 weights (mel taps x input channels,
    zero padded to ``run``, a multiple of 4), the two channels' groups interleaved, and each
    group's bytes stored as w0 w2 w1 w3 (so that SXTB16 and SXTB16-ROR8 unpack the pairs (w0, w1)
    and (w2, w3)). An odd last channel follows on its own (not interleaved)."""
    c_out, c_in, kt, km = weight.shape
    run = -(-km * c_in // 4) * 4
    per = np.zeros((c_out, kt, run), np.int8)
    per[:, :, :km * c_in] = weight.transpose(0, 2, 3, 1).reshape(c_out, kt, km * c_in)
    per = per.reshape(c_out, kt, run // 4, 4)[..., [0, 2, 1, 3]]
    pairs = c_out // 2 * 2
    packed = per[:pairs].reshape(pairs // 2, 2, kt, run // 4, 4).transpose(0, 2, 3, 1, 4).reshape(-1)
    return np.concatenate([packed, per[pairs:].reshape(-1)]), run


def _check_rounding(conv: QuantConv, name: str) -> None:
    w = conv.weight.reshape(conv.weight.shape[0], -1).astype(np.int64)
    worst = (np.abs(w).sum(axis=1) * 255 + np.abs(conv.bias.astype(np.int64))) * conv.scale.astype(np.float64)
    if worst.max() >= ROUNDING_LIMIT:
        raise CExportError(f"{name}: requantisation multiplier too large for exact rounding ({worst.max():.3g} >= 2^22)")


def _c_float(v) -> str:
    v = float(np.float32(v))
    if np.isinf(v):
        return "(1e30f * 1e30f)" if v > 0 else "(-1e30f * 1e30f)"
    return f"{v:.9g}f" if "e" in f"{v:.9g}" or "." in f"{v:.9g}" else f"{v:.9g}.0f"


def _c_array(ctype: str, name: str, values, per_line: int = 16, align: bool = False) -> str:
    flat = np.asarray(values).reshape(-1)
    fmt = _c_float if ctype == "float" else (lambda v: str(int(v)))
    lines = [", ".join(fmt(v) for v in flat[i:i + per_line]) for i in range(0, len(flat), per_line)]
    attr = " W2S_ALIGN4" if align else ""
    return f"static const {ctype} {name}[{len(flat)}]{attr} = {{\n    " + ",\n    ".join(lines) + "\n};\n"


def _conv_init(name: str, conv: QuantConv, taps: int) -> tuple[str, str]:
    """(array definitions, w2s_conv initializer) of one layer."""
    _check_rounding(conv, name)
    packed, run = pack_conv_weight(conv.weight)
    c_out, c_in = conv.weight.shape[:2]
    bias = np.zeros(c_out + c_out % 2, np.int32)
    bias[:c_out] = conv.bias
    arrays = (_c_array("int8_t", f"{name}_weight", packed, align=True) + _c_array("int32_t", f"{name}_bias", bias)
              + _c_array("float", f"{name}_scale", conv.scale))
    lut = "0"
    if conv.lut is not None and not np.array_equal(conv.lut, np.arange(256)):
        arrays += _c_array("uint8_t", f"{name}_lut", conv.lut)
        lut = f"{name}_lut"
    init = (f"{{{c_in}, {c_out}, {taps}, {run}, {name}_weight, {name}_bias, {name}_scale, {conv.y_zero}, {lut}, "
            f"{conv.next_zero}}}")
    return arrays, init


def write_bundle(net: Network, out_dir, *, hop_chunks: int = 16) -> list[Path]:
    """Write the C bundle of ``net`` into ``out_dir``; returns the files written."""
    out_dir = Path(out_dir)
    (out_dir / "cortex-m4").mkdir(parents=True, exist_ok=True)
    bins = net.n_fft // 2 + 1
    half = net.n_fft // 2 + 1
    m2 = (net.n_mels + 1) // 2
    config = f"""/* Generated by wav2small: sizes of this bundle's model. */
#ifndef W2S_CONFIG_H
#define W2S_CONFIG_H

#define W2S_CHANNELS {net.channels}
#define W2S_N_MELS {net.n_mels}
#define W2S_N_MELS2 {m2}
#define W2S_N_FFT {net.n_fft}
#define W2S_HOP {net.hop}
#define W2S_N_BINS {bins}
#define W2S_FRAMES_PER_CHUNK {net.frames_per_chunk}
#define W2S_CHUNK {net.frames_per_chunk * net.hop} /* samples at 16 kHz */
#ifndef W2S_HOP_CHUNKS
#define W2S_HOP_CHUNKS {hop_chunks} /* chunks per result */
#endif

#endif
"""
    nz = [np.flatnonzero(net.mel[:, j]) for j in range(net.n_mels)]
    mel_first = [int(z[0]) if len(z) else 0 for z in nz]
    mel_count = [int(z[-1] - z[0] + 1) if len(z) else 0 for z in nz]
    mel_weight = np.concatenate([net.mel[f:f + c, j] for j, (f, c) in enumerate(zip(mel_first, mel_count))])
    parts, inits = [], []
    for i, conv in enumerate(net.convs):
        arrays, init = _conv_init(f"l{i + 1}", conv, 3)
        parts.append(arrays)
        inits.append(init)
    lin_arrays, lin_init = _conv_init("lin", net.lin, 1)
    sof_arrays, sof_init = _conv_init("sof", net.sof, 1)
    head = net.head
    _check_rounding(head, "head")
    # the head reads the features in the C engine's order (channel, [pooled mel, Gram]), the graph's flatten order
    model = "".join([
        "/* Generated by wav2small: the quantised weights of one model (see w2s.h for the layout). */\n",
        "#include \"w2s.h\"\n\n",
        "#if defined(__GNUC__)\n#define W2S_ALIGN4 __attribute__((aligned(4)))\n#else\n#define W2S_ALIGN4\n#endif\n\n",
        _c_array("float", "prenorm_carry", net.prenorm_carry),
        _c_array("float", "prenorm_mix", net.prenorm_mix),
        _c_array("float", "dft_real", net.dft_real[:, :half]),
        _c_array("float", "dft_imag", net.dft_imag[:, :half]),
        _c_array("uint8_t", "mel_first", mel_first), _c_array("uint8_t", "mel_count", mel_count),
        _c_array("float", "mel_weight", mel_weight),
        *parts, lin_arrays, sof_arrays,
        _c_array("uint8_t", "pool_lut", net.pool_lut) if net.pool_lut is not None else "",
        _c_array("int8_t", "head_weight", head.weight.reshape(head.weight.shape[0], -1)),
        _c_array("int32_t", "head_bias", head.bias),
        "\nconst w2s_model w2s_weights = {\n",
        f"    prenorm_carry, prenorm_mix, {_c_float(net.prenorm_gain)}, {_c_float(net.prenorm_eps)},\n",
        "    dft_real, dft_imag, mel_first, mel_count, mel_weight,\n",
        f"    {_c_float(net.logmel_scale)}, {net.logmel_zero},\n",
        "    {" + ",\n     ".join(inits) + "},\n",
        f"    {net.pool_zero}, {'pool_lut' if net.pool_lut is not None else '0'}, {net.pool_next_zero},\n",
        f"    {lin_init},\n    {sof_init},\n",
        f"    {_c_float(net.lin.y_scale)}, {_c_float(net.sof.y_scale)}, {net.lin.y_zero}, {net.sof.y_zero},\n",
        f"    {_c_float(net.decay)},\n",
        f"    {_c_float(head.x_scale)}, {head.x_zero},\n",
        f"    head_weight, head_bias, {_c_float(head.scale[0])}, {head.y_zero}, {_c_float(net.out_scale)},\n",
        "};\n",
    ])
    (out_dir / "w2s_config.h").write_text(config)
    (out_dir / "w2s_model.c").write_text(model)
    for name in SOURCES:
        shutil.copyfile(CSRC / name, out_dir / name)
    return [out_dir / n for n in (*GENERATED, *SOURCES)]


def bundle_readme(net: Network, *, hop_chunks: int, source: str, device: dict | None = None) -> str:
    """README.md of a bundle: what it is, the API, how to build and run it, what is exact."""
    chunk = net.frames_per_chunk * net.hop
    lines = [
        f"# wav2small on a microcontroller: {source}",
        "",
        f"Streaming speech emotion (arousal, dominance, valence) in plain C99: {net.channels} channels, "
        f"{net.n_mels} mel bands, chunks of {chunk} samples ({chunk / 16:g} ms at 16 kHz), a result every "
        f"{hop_chunks} chunks ({hop_chunks * chunk / 16000:g} s) for all the audio so far.",
        "",
        "| file | what |",
        "|---|---|",
        "| `w2s.h` | the API and the state (one struct, `sizeof` a compile-time constant) |",
        "| `w2s.c` | the streaming engine |",
        "| `w2s_kernels.c`, `w2s_math.c` | int8 kernels (SMLAD on Cortex-M4/M7/M33/M55, portable C elsewhere), log and exp |",
        "| `w2s_config.h`, `w2s_model.c` | this model: sizes, int8 weights and quantisation (const: flash) |",
        "| `w2s_main.c` | a program that streams a WAV file and prints one CSV row per result |",
        "| `cortex-m4/` | start-up code and linker script for QEMU's mps2-an386 board, a bare firmware |",
        "| `Makefile` | the builds below |",
        "",
        "```c",
        "static w2s_state s;            /* no heap, no OS; the C library is not needed (math.h for sqrtf) */",
        "float adv[3];",
        "w2s_init(&s);",
        f"while (read_chunk(chunk))      /* {chunk} float samples, 16 kHz mono, any gain */",
        "    if (w2s_process(&s, chunk) == 1) w2s_result(&s, adv);",
        "```",
        "",
        "Build and run: `make && ./w2s_stream speech.wav` (host); `make run-m4 IN=speech.wav OUT=out.csv` "
        "(Cortex-M4F under QEMU: needs Debian's gcc-arm-none-eabi, libnewlib-arm-none-eabi, qemu-system-arm); "
        "`make w2s_firmware.elf` (the bare image whose size a device needs).",
        "",
        "Arithmetic: the network body (seven 3x3 convolutions, the max-pool, the attention values and logits, the "
        "head) runs on int8 weights and uint8 activations with int32 sums and onnxruntime's requantisation "
        "(float32 multiplier, round half to even), bit for bit as onnxruntime runs the streaming int8 ONNX graph. "
        "The input normalisation, the log-mel front-end, the online softmax sums and the Gram matrix are single "
        "precision float, in the graph's order of operations but not its summation order or its log and exp: "
        "they agree with onnxruntime to float rounding (about 1e-7 relative), and a value that lands within that of "
        "a quantisation step's edge can be rounded to the neighbouring int8 step. Host and device builds give "
        "identical bits (no floating-point contraction, no C library log or exp).",
    ]
    if device:
        lines += ["", "Cortex-M4F, emulated (QEMU mps2-an386, instructions counted):", "",
                  "| flash (code + constants) | RAM (state + chunk buffer + peak stack) | instructions per second of audio | "
                  "clock for real time at 1 instruction per cycle |", "|---|---|---|---|",
                  f"| {device['flash_bytes'] / 1024:.1f} KiB | {device['ram_bytes'] / 1024:.1f} KiB "
                  f"({device['state_bytes'] / 1024:.1f} + {chunk * 4 / 1024:.1f} + {device['peak_stack_bytes'] / 1024:.1f}) | "
                  f"{device['instructions_per_second'] / 1e6:.1f} M | {device['real_time_mhz']:.0f} MHz (an estimate) |"]
    return "\n".join(lines) + "\n"


def export_c(model, out_dir, **options) -> dict:
    """Write the C99 bundle of a streaming int8 Wav2Small for microcontrollers.

    Args:
        model: a streaming int8 ONNX graph (``model.stream.int8.onnx``, written by
            ``wav2small export --streaming --int8 --activations all``) or the export folder holding it.
        out_dir: the bundle's folder, written whole (an error leaves nothing behind; an existing
            folder is replaced).
        options: the fields of :class:`wav2small.options.CBundleConfig`: ``hop_chunks`` (chunks per
            result: 16 chunks of 32 ms, a result every 0.512 s), ``check`` (compile the bundle on this
            computer with ``cc -std=c99 -Wall -Wextra -Werror`` and compare its results on a 4 s test
            signal with onnxruntime running the same graph), ``measure`` (also build it for a
            Cortex-M4F and measure flash, RAM and instructions per second of audio under QEMU;
            without the toolchain the report says what to install).

    Returns:
        the report, also written as ``report.json``; the measured figures also go into
        ``README.md`` of the bundle.

    Raises:
        CExportError: the graph is not a streaming int8 export, or holds an operator the C engine
            cannot express (it names it).

    Example (it needs files or a download, so it is not run as a doctest)::

        export_c("export/w2s", "export/w2s/c")
    """
    from ..atomic import atomic_directory, write_json
    from ..options import CBundleConfig
    from .mcu import ToolchainMissing, device_footprint, makefile

    config = CBundleConfig(**options)
    hop_chunks = config.hop_chunks
    path = Path(model)
    if path.is_dir():
        path = path / STREAM_INT8_FILE
    if not path.is_file():
        raise CExportError(f"{path}: no such file (give a streaming int8 ONNX graph or its export folder)")
    proto = onnx.load(str(path))
    net = read_network(proto)
    report = {"source": str(path), "model": {"channels": net.channels, "n_mels": net.n_mels, "n_fft": net.n_fft,
                                             "hop": net.hop, "chunk": net.frames_per_chunk * net.hop,
                                             "hop_chunks": hop_chunks, "macs_per_second": net.macs_per_second()}}
    out_dir = Path(out_dir)
    with atomic_directory(out_dir) as tmp:
        write_bundle(net, tmp, hop_chunks=hop_chunks)
        (tmp / "Makefile").write_text(makefile())
        if config.check:
            report["exactness"] = _check_against_onnxruntime(tmp, path, net)
        if config.measure:
            try:
                report["device"] = device_footprint(tmp, macs_per_second=net.macs_per_second())
            except ToolchainMissing as missing:
                report["device"] = {"skipped": str(missing)}
            for name in ("w2s_stream.elf", "w2s_firmware.elf"):
                (tmp / name).unlink(missing_ok=True)
        (tmp / "w2s_stream").unlink(missing_ok=True)
        device = report.get("device") if "flash_bytes" in report.get("device", {}) else None
        (tmp / "README.md").write_text(bundle_readme(net, hop_chunks=hop_chunks, source=path.name, device=device))
        write_json(tmp / "report.json", report)
    _add_to_footprint(path.parent, report)
    return report


def _add_to_footprint(folder: Path, report: dict) -> None:
    """Add the bundle's device figures to an export folder's footprint report (footprint.json and .md)."""
    from ..atomic import write_json, write_text

    device = report.get("device", {})
    prints = folder / "footprint.json"
    if "flash_bytes" not in device or not prints.is_file():
        return
    data = json.loads(prints.read_text())
    data["c_bundle"] = device
    write_json(prints, data)
    markdown = folder / "footprint.md"
    if markdown.is_file():
        text = markdown.read_text().split("\n## C bundle on a Cortex-M4F")[0].rstrip("\n")
        write_text(markdown, text + "\n\n" + device_markdown(device))


def device_markdown(device: dict) -> str:
    """The footprint section of a C bundle measured on the emulated Cortex-M4F."""
    return "\n".join([
        "## C bundle on a Cortex-M4F (QEMU mps2-an386, instructions counted)", "",
        "| flash (code + constants) | RAM (static + peak stack) | state | instructions per second of audio | per MAC | "
        "clock for real time |", "|---|---|---|---|---|---|",
        f"| {device['flash_bytes']:,} B | {device['ram_bytes']:,} B ({device['static_ram_bytes']:,} + {device['peak_stack_bytes']:,}) | "
        f"{device['state_bytes']:,} B | {device['instructions_per_second'] / 1e6:.1f} M | {device.get('instructions_per_mac', float('nan')):.2f} | "
        f"{device['real_time_mhz']:.0f} MHz |", "", f"Clock: {device['note']}.", ""])


def _check_against_onnxruntime(bundle: Path, onnx_path: Path, net: Network, seconds: float = 4.0) -> dict:
    """Results of the host build, one per chunk, against onnxruntime streaming the graph."""
    import tempfile

    from ..metrics import concordance_cc
    from ..streaming import Stream
    from ..testing import synth_speech
    from .mcu import build_host, run_host

    chunk = net.frames_per_chunk * net.hop
    with tempfile.TemporaryDirectory() as tmp:
        program = build_host(bundle, Path(tmp) / "w2s_stream", defines=("-DW2S_HOP_CHUNKS=1",))
        x = synth_speech(seconds, 0)
        import soundfile

        soundfile.write(str(Path(tmp) / "check.wav"), x, SAMPLING_RATE, subtype="FLOAT")
        c = run_host(program, Path(tmp) / "check.wav")[:, 1:].astype(np.float32)
    stream = Stream(onnx_path, hop=chunk / SAMPLING_RATE, precision="int8")
    ref = np.array([[e.arousal, e.dominance, e.valence] for e in stream.feed(x)], np.float32)
    n = min(len(c), len(ref))
    diff = np.abs(c[:n] - ref[:n])
    return {"signal_seconds": seconds, "results": n, "identical_results": int((diff.max(axis=1) == 0).sum()),
            "max_abs_diff": float(diff.max()), "ccc": dict(zip(("arousal", "dominance", "valence"),
                                                               np.round(np.atleast_1d(concordance_cc(ref[:n], c[:n])), 6).tolist()))}
