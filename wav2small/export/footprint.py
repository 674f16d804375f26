"""What an exported model costs on a small device: stored weights and bytes, multiply-accumulates
per second of audio, peak activation memory and a per-layer table, read from the ONNX graph; for a
streaming graph, the state bytes and the activation memory of one chunk.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
from onnx import helper, numpy_helper, shape_inference

from ..contract import SAMPLING_RATE, STATE_OUTPUT_PREFIX, STREAM_METADATA

# Ops that can overwrite their only input (a runtime computes them in place).
IN_PLACE_OPS = {"Relu", "Clip", "Sigmoid", "HardSigmoid", "HardSwish", "Tanh", "Neg", "Sqrt", "Log", "Exp", "Abs", "Softmax"}
# Element-wise ops of two inputs that can overwrite the first when the output has its shape.
BINARY_OPS = {"Mul", "Add", "Sub", "Div"}


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

    A streaming graph (a fixed chunk and its state in and out) is measured for one chunk instead:
    ``stream`` holds the ``chunk`` (samples), ``state_bytes`` (by dtype too) and the
    ``peak_activation_bytes`` of one chunk, the state not counted (it persists between chunks).
    """
    path = Path(model) if not isinstance(model, onnx.ModelProto) else None
    proto = onnx.load(str(path)) if path is not None else model
    constant = _constant_tensors(proto)
    result = {"file_bytes": path.stat().st_size if path is not None else len(proto.SerializeToString()),
              "weights": _stored_weights(proto), "macs": {}, "peak_activation_bytes": {}}
    stream = {p.key: p.value for p in proto.metadata_props}.get(STREAM_METADATA)
    if stream is not None:
        return {**result, **_stream_footprint(proto, json.loads(stream), constant, sampling_rate)}
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


def _stream_footprint(proto, stream: dict, constant: set, sampling_rate: int) -> dict:
    """MACs, activation peak and state of one chunk of a streaming graph (see :func:`footprint`)."""
    chunk = stream["chunk"]
    shapes, dtypes = _shapes(proto, chunk)
    layers = _layers(proto, shapes, dtypes, constant)
    macs = int(sum(layer["macs"] for layer in layers))
    states = set(stream["states"]) | {STATE_OUTPUT_PREFIX + name for name in stream["states"]}
    by_dtype = {}
    for name in stream["states"]:
        kind = helper.tensor_dtype_to_np_dtype(dtypes[name]).name
        by_dtype[kind] = by_dtype.get(kind, 0) + int(np.prod(shapes[name])) * _itemsize(dtypes[name])
    peak = _peak_bytes(proto, shapes, dtypes, constant, exclude=states)
    return {"macs": {"chunk": macs}, "macs_per_second": int(round(macs * sampling_rate / chunk)),
            "peak_activation_bytes": {"chunk": peak}, "layers": layers, "layers_seconds": chunk / sampling_rate,
            "stream": {"chunk": chunk, "state_bytes": sum(by_dtype.values()), "state_bytes_by_dtype": by_dtype,
                       "peak_activation_bytes": peak}}


def footprint_markdown(prints: dict, *, title: str = "model") -> str:
    """Markdown: a summary row per model file (offline and streaming files in their own tables) and
    the per-layer table of each."""
    lines = [f"# Footprint: {title}"]
    offline = {name: fp for name, fp in prints.items() if "stream" not in fp}
    streaming = {name: fp for name, fp in prints.items() if "stream" in fp}
    if offline:
        lengths = next(iter(offline.values()))["peak_activation_bytes"]
        lines += ["", "| file | bytes | stored values | weight bytes | MACs per s of audio | "
                  + " | ".join(f"peak activations {k}" for k in lengths) + " |", "|---|---|---|---|---|" + "---|" * len(lengths)]
        for name, fp in offline.items():
            lines.append(f"{_summary_cells(name, fp)} | " + " | ".join(f"{v / 1024:,.1f} KiB" for v in fp["peak_activation_bytes"].values()) + " |")
    if streaming:
        lines += ["", "Streaming graphs, per chunk (the state persists between chunks and is not counted as activations):", "",
                  "| file | bytes | stored values | weight bytes | MACs per s of audio | chunk | state | peak activations per chunk |",
                  "|---|---|---|---|---|---|---|---|"]
        for name, fp in streaming.items():
            st = fp["stream"]
            lines.append(f"{_summary_cells(name, fp)} | {st['chunk']} samples | {st['state_bytes']:,} B "
                         f"({', '.join(f'{k} {v:,}' for k, v in st['state_bytes_by_dtype'].items())}) | "
                         f"{st['peak_activation_bytes'] / 1024:,.1f} KiB |")
    for name, fp in prints.items():
        lines += ["", f"## {name}: layers at {fp['layers_seconds']:g} s of audio", "",
                  "| node | op | output shape | weights | MACs | output bytes |", "|---|---|---|---|---|---|"]
        lines += [f"| {r['name']} | {r['op']} | {'x'.join(map(str, r['shape']))} | {r['weights']:,} | {r['macs']:,} | {r['bytes']:,} |"
                  for r in fp["layers"]]
    return "\n".join(lines) + "\n"


def _summary_cells(name: str, fp: dict) -> str:
    w = fp["weights"]
    return (f"| {name} | {fp['file_bytes']:,} | {w['values']:,} | {w['bytes']:,} "
            f"({', '.join(f'{k} {v:,}' for k, v in w['bytes_by_dtype'].items())}) | {fp['macs_per_second'] / 1e6:,.1f} M")


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
    missing = [name for node in fixed.graph.node for name in node.output if name and name not in shapes and dtypes.get(name)]
    if missing:  # shapes computed from the input's length (a running prenorm pads to whole blocks): run it
        shapes.update(_run_shapes(fixed, missing, dtypes))
    return shapes, dtypes


def _run_shapes(fixed: onnx.ModelProto, names: list[str], dtypes: dict) -> dict:
    """Shapes of ``names`` found by running ``fixed`` (static input shapes) in onnxruntime on zeros."""
    import onnxruntime as ort

    probe = onnx.ModelProto()
    probe.CopyFrom(fixed)
    probe.graph.output.extend(helper.make_tensor_value_info(name, dtypes[name], None) for name in names)
    session = ort.InferenceSession(probe.SerializeToString(), providers=["CPUExecutionProvider"])
    feeds = {i.name: np.zeros([d.dim_value for d in i.type.tensor_type.shape.dim],
                              helper.tensor_dtype_to_np_dtype(i.type.tensor_type.elem_type)) for i in fixed.graph.input}
    values = session.run(names, feeds)
    return {name: list(value.shape) for name, value in zip(names, values)}


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


def _peak_bytes(proto, shapes, dtypes, constant, exclude=frozenset()) -> int:
    """Peak bytes of the tensors alive at once along the graph; ``exclude``: inputs and outputs not
    counted (a stream's state)."""
    graph = proto.graph
    readers = {}
    for node in graph.node:
        for name in node.input:
            readers.setdefault(name, []).append(node)
    # a tensor held as another one: dequantized activations and in-place element-wise results (also of
    # a binary op whose output has its first input's shape: a mask multiplied in)
    alias = {}
    for node in graph.node:
        src = node.input[0] if node.input else None
        if src is None or src in constant or node.output[0] in constant:
            continue
        only_quantized = all(r.op_type == "QuantizeLinear" for r in readers[src])
        same_shape = shapes.get(node.output[0]) == shapes.get(src) is not None
        if node.op_type == "DequantizeLinear" or (node.op_type == "QuantizeLinear" and only_quantized) \
                or (node.op_type in IN_PLACE_OPS and len(readers[src]) == 1) \
                or (node.op_type in BINARY_OPS and same_shape and len(readers[src]) == 1):
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
    live = {i.name: size(i.name) for i in graph.input if i.name not in exclude}
    peak = sum(live.values())
    for step, node in enumerate(graph.node):
        for name in node.output:
            if name and name not in constant and name not in alias and name not in exclude:
                live[name] = size(name)
        peak = max(peak, sum(live.values()))
        for name in list(live):
            if last_use.get(name, -1) <= step and name not in outputs:
                del live[name]
    return int(peak)
