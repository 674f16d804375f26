"""What an exported model costs on a small device: stored weights and bytes, multiply-accumulates
per second of audio, peak activation memory and a per-layer table, read from the ONNX graph.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import helper, numpy_helper, shape_inference

from ..contract import SAMPLING_RATE

# Ops that can overwrite their only input (a runtime computes them in place).
IN_PLACE_OPS = {"Relu", "Clip", "Sigmoid", "HardSigmoid", "HardSwish", "Tanh", "Neg", "Sqrt", "Log", "Exp", "Abs", "Softmax"}


def footprint(model, *, seconds=(1.0, 5.0), sampling_rate: int = SAMPLING_RATE) -> dict:
    """Footprint of an ONNX model with input (batch, samples): batch 1, ``seconds`` of audio.

    Returns a dict with ``file_bytes``, stored ``weights`` (values and bytes by dtype),
    ``macs`` (multiply-accumulates of Conv, Gemm and MatMul) and ``peak_activation_bytes`` per
    input length, ``macs_per_second`` (of audio, from the longest length) and ``layers`` (per node
    at the first length). Constants computed in the graph (the DFT kernels) count as weights, not
    activations: onnxruntime folds them when the session starts.

    Activation memory is the peak, along the graph's order, of the bytes of tensors alive at once,
    where a tensor lives from the node writing it to its last reader; element-wise ops with a single
    reader run in place, and in an int8 (QDQ) graph a tensor read only by QuantizeLinear is held as
    int8 and a dequantized activation is no copy: what a fusing int8 runtime holds.
    """
    path = Path(model) if not isinstance(model, onnx.ModelProto) else None
    proto = onnx.load(str(path)) if path is not None else model
    constant = _constant_tensors(proto)
    result = {"file_bytes": path.stat().st_size if path is not None else len(proto.SerializeToString()),
              "weights": _stored_weights(proto), "macs": {}, "peak_activation_bytes": {}}
    for i, sec in enumerate(seconds):
        shapes, dtypes = _shapes(proto, int(round(sec * sampling_rate)))
        layers = _layers(proto, shapes, dtypes, constant)
        result["macs"][f"{sec:g}s"] = int(sum(layer["macs"] for layer in layers))
        result["peak_activation_bytes"][f"{sec:g}s"] = _peak_bytes(proto, shapes, dtypes, constant)
        if i == 0:
            result["layers"] = layers
            result["layers_seconds"] = sec
    longest = max(seconds)
    result["macs_per_second"] = int(round(result["macs"][f"{longest:g}s"] / longest))
    return result


def footprint_markdown(prints: dict, *, title: str = "model") -> str:
    """Markdown: a summary row per model file and the per-layer table of each."""
    lines = [f"# Footprint: {title}", "", "| file | bytes | stored values | weight bytes | MACs per s of audio | "
             + " | ".join(f"peak activations {k}" for k in next(iter(prints.values()))["peak_activation_bytes"]) + " |",
             "|---|---|---|---|---|" + "---|" * len(next(iter(prints.values()))["peak_activation_bytes"])]
    for name, fp in prints.items():
        w = fp["weights"]
        lines.append(f"| {name} | {fp['file_bytes']:,} | {w['values']:,} | {w['bytes']:,} "
                     f"({', '.join(f'{k} {v:,}' for k, v in w['bytes_by_dtype'].items())}) | {fp['macs_per_second'] / 1e6:,.1f} M | "
                     + " | ".join(f"{v / 1024:,.1f} KiB" for v in fp["peak_activation_bytes"].values()) + " |")
    for name, fp in prints.items():
        lines += ["", f"## {name}: layers at {fp['layers_seconds']:g} s of audio", "",
                  "| node | op | output shape | weights | MACs | output bytes |", "|---|---|---|---|---|---|"]
        lines += [f"| {r['name']} | {r['op']} | {'x'.join(map(str, r['shape']))} | {r['weights']:,} | {r['macs']:,} | {r['bytes']:,} |"
                  for r in fp["layers"]]
    return "\n".join(lines) + "\n"


def _itemsize(elem_type: int) -> int:
    return np.dtype(helper.tensor_dtype_to_np_dtype(elem_type)).itemsize


def _constant_tensors(proto: onnx.ModelProto) -> set[str]:
    """Initializers and every tensor computed from them alone."""
    constant = {i.name for i in proto.graph.initializer} | {s.values.name for s in proto.graph.sparse_initializer}
    for node in proto.graph.node:
        if all(name in constant for name in node.input if name):
            constant.update(node.output)
    return constant


def _stored_weights(proto: onnx.ModelProto) -> dict:
    by_dtype_values, by_dtype_bytes = {}, {}
    for init in proto.graph.initializer:
        kind = helper.tensor_dtype_to_np_dtype(init.data_type).name
        value = numpy_helper.to_array(init)
        by_dtype_values[kind] = by_dtype_values.get(kind, 0) + value.size
        by_dtype_bytes[kind] = by_dtype_bytes.get(kind, 0) + value.nbytes
    for sparse in proto.graph.sparse_initializer:
        kind = helper.tensor_dtype_to_np_dtype(sparse.values.data_type).name
        values, index = numpy_helper.to_array(sparse.values), numpy_helper.to_array(sparse.indices)
        by_dtype_values[kind] = by_dtype_values.get(kind, 0) + values.size
        by_dtype_bytes[kind] = by_dtype_bytes.get(kind, 0) + values.nbytes + index.nbytes
    return {"values": int(sum(by_dtype_values.values())), "bytes": int(sum(by_dtype_bytes.values())),
            "values_by_dtype": by_dtype_values, "bytes_by_dtype": by_dtype_bytes}


def _shapes(proto: onnx.ModelProto, samples: int) -> tuple[dict, dict]:
    """Static shapes and element types of every tensor for input (1, samples)."""
    fixed = onnx.ModelProto()
    fixed.CopyFrom(proto)
    batch, length = fixed.graph.input[0].type.tensor_type.shape.dim
    batch.dim_value, length.dim_value = 1, samples
    for sparse in fixed.graph.sparse_initializer:  # shape inference reads dense initializers only
        dense = np.zeros(int(np.prod(sparse.dims)), helper.tensor_dtype_to_np_dtype(sparse.values.data_type))
        dense[numpy_helper.to_array(sparse.indices).reshape(-1)] = numpy_helper.to_array(sparse.values)
        fixed.graph.initializer.append(numpy_helper.from_array(dense.reshape(list(sparse.dims)), sparse.values.name))
    del fixed.graph.sparse_initializer[:]
    inferred = shape_inference.infer_shapes(fixed, data_prop=True)
    shapes, dtypes = {}, {}
    for value in list(inferred.graph.value_info) + list(inferred.graph.input) + list(inferred.graph.output):
        t = value.type.tensor_type
        dims = [d.dim_value if d.HasField("dim_value") else None for d in t.shape.dim]
        if None not in dims:
            shapes[value.name] = dims
        dtypes[value.name] = t.elem_type
    for init in inferred.graph.initializer:
        shapes[init.name], dtypes[init.name] = list(init.dims), init.data_type
    for sparse in inferred.graph.sparse_initializer:
        shapes[sparse.values.name], dtypes[sparse.values.name] = list(sparse.dims), sparse.values.data_type
    return shapes, dtypes


def _macs(node, shapes) -> int:
    out = shapes.get(node.output[0])
    if out is None or node.op_type not in ("Conv", "Gemm", "MatMul"):
        return 0
    if node.op_type == "Conv":
        w = shapes[node.input[1]]
        return int(np.prod(out)) * int(np.prod(w[1:]))  # each output: (c_in / groups) x kernel area
    a = shapes[node.input[0]]
    trans_a = node.op_type == "Gemm" and any(x.name == "transA" and x.i for x in node.attribute)
    return int(np.prod(out)) * int(a[-2] if trans_a else a[-1])


def _layers(proto, shapes, dtypes, constant) -> list[dict]:
    rows = []
    for node in proto.graph.node:
        if all(o in constant for o in node.output):
            continue
        out = node.output[0]
        weights = sum(int(np.prod(shapes.get(i, [0]))) for i in node.input[1:] if i in constant
                      and dtypes.get(i) not in (onnx.TensorProto.INT64,)) if node.op_type in ("Conv", "Gemm", "MatMul") else 0
        shape = shapes.get(out, [])
        rows.append({"name": node.name or out, "op": node.op_type, "shape": shape, "weights": weights,
                     "macs": _macs(node, shapes), "bytes": int(np.prod(shape)) * _itemsize(dtypes.get(out, 1)) if shape else 0})
    return rows


def _peak_bytes(proto, shapes, dtypes, constant) -> int:
    graph = proto.graph
    readers = {}
    for node in graph.node:
        for name in node.input:
            readers.setdefault(name, []).append(node)
    # a tensor held as another one: dequantized activations and in-place element-wise results
    alias = {}
    for node in graph.node:
        src = node.input[0] if node.input else None
        if src is None or src in constant or node.output[0] in constant:
            continue
        only_quantized = all(r.op_type == "QuantizeLinear" for r in readers[src])
        if node.op_type == "DequantizeLinear" or (node.op_type == "QuantizeLinear" and only_quantized) \
                or (node.op_type in IN_PLACE_OPS and len(readers[src]) == 1):
            alias[node.output[0]] = alias.get(src, src)

    def size(name):
        elem = dtypes.get(name, 1)
        quantizers = readers.get(name, [])
        if quantizers and all(r.op_type == "QuantizeLinear" for r in quantizers):
            elem = dtypes.get(quantizers[0].output[0], elem)  # a fusing runtime writes it as int8 directly
        return int(np.prod(shapes.get(name, [0]))) * _itemsize(elem)

    last_use = {}
    for step, node in enumerate(graph.node):
        for name in node.input:
            if name and name not in constant:
                last_use[alias.get(name, name)] = step
    outputs = {alias.get(o.name, o.name) for o in graph.output}
    live = {i.name: size(i.name) for i in graph.input}
    peak = sum(live.values())
    for step, node in enumerate(graph.node):
        for name in node.output:
            if name and name not in constant and name not in alias:
                live[name] = size(name)
        peak = max(peak, sum(live.values()))
        for name in list(live):
            if last_use.get(name, -1) <= step and name not in outputs:
                del live[name]
    return int(peak)
