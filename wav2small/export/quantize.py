"""Static int8 quantization of a student's ONNX graph: the network body in int8 (activations where int8
kernels pay, weights everywhere), the log-mel front-end in fp32.
"""

from __future__ import annotations

import tempfile
import warnings
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from ..contract import INPUT_NAME
from .graph import copy_model, quiet_logging, save_model

# int8 kernels beat fp32 ones on CPUs only when a layer is wide enough to fill their register blocks
# (measured with onnxruntime: 13-channel convs were slower in int8, 33-channel ones twice as fast).
MIN_INT8_CHANNELS = 16


def quantize(proto: onnx.ModelProto, frontend: set[str], clips: list[np.ndarray], *, per_channel: bool = False,
             activations: str = "auto", reduce_range: bool = False) -> tuple[onnx.ModelProto, dict]:
    """Static int8 quantization of the network body (QDQ format); the front-end stays fp32.

    Layers with int8 activations are calibrated (min/max) on ``clips``; the weights of the other
    weighted layers are stored as int8 and dequantized to fp32 (see ``activations`` of
    :func:`export_onnx`). ``reduce_range``: 7-bit weights in the layers with int8 activations
    (see :class:`wav2small.options.ExportConfig`). Returns the model and the choices made.
    """
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    weighted = weighted_nodes(proto, frontend)
    full = [n for n, wide in weighted.items() if activations == "all" or wide]
    with tempfile.TemporaryDirectory() as tmp:
        src, dst = Path(tmp) / "fp32.onnx", Path(tmp) / "int8.onnx"
        save_model(proto, src)
        if full:
            with warnings.catch_warnings(), quiet_logging():
                warnings.simplefilter("ignore")
                quantize_static(str(src), str(dst), _ClipReader(clips), quant_format=QuantFormat.QDQ,
                                op_types_to_quantize=["Conv", "Gemm", "MatMul"], nodes_to_quantize=full,
                                per_channel=per_channel, activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                                calibrate_method=CalibrationMethod.MinMax, reduce_range=reduce_range)
            quantized = onnx.load(str(dst))
        else:
            quantized = copy_model(proto)
    weight_only = [n for n in weighted if n not in full]
    quantize_weights(quantized, weight_only, per_channel=per_channel)
    return quantized, {"int8_activation_nodes": full, "int8_weight_only_nodes": weight_only,
                       "fp32_frontend_nodes": sorted(frontend), "calibration_method": "minmax" if full else None}


def weighted_nodes(proto: onnx.ModelProto, frontend: set[str]) -> dict[str, bool]:
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
