"""The C bundle's int8 kernels against onnxruntime, operator by operator, and its log and exp.

Each case is a small QDQ graph that onnxruntime fuses into one integer operator (QLinearConv,
the uint8 max-pool, DequantizeLinear -> Relu -> QuantizeLinear); the C kernel must give the same
bytes. Weights are 7-bit (|w| <= 64), as the C export stores them: onnxruntime's u8s8 kernels on
AVX2 CPUs without VNNI saturate int16 pair sums of full 8-bit weights, which would make the
reference itself differ between CPUs.
"""

from __future__ import annotations

import subprocess

import numpy as np
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from wav2small.export.c import CSRC, pack_conv_weight, requantisation_table
from wav2small.export.mcu import STRICT_FLAGS, missing_tools

pytestmark = pytest.mark.skipif(bool(missing_tools(device=False)), reason="needs a C compiler: apt-get install gcc")


def run_onnx(nodes, inputs: dict, initializers: dict, output: str = "y") -> np.ndarray:
    inits = [numpy_helper.from_array(np.asarray(v), k) for k, v in initializers.items()]
    graph = helper.make_graph(nodes, "case", [helper.make_tensor_value_info(k, helper.np_dtype_to_tensor_dtype(v.dtype), v.shape)
                                              for k, v in inputs.items()],
                              [helper.make_tensor_value_info(output, TensorProto.UINT8, None)], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    return ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"]).run(None, inputs)[0]


def c_array(ctype, name, values) -> str:
    flat = np.asarray(values).reshape(-1)
    text = ", ".join(f"{float(v)!r}f" if ctype == "float" else str(int(v)) for v in flat)
    return f"static const {ctype} {name}[{max(len(flat), 1)}] W2S_A4 = {{{text or '0'}}};\n"


def run_c(body: str, declarations: str, tmp_path) -> list[int]:
    """Compile a program around the kernels (strict C99) and return the integers it prints."""
    source = tmp_path / "case.c"
    source.write_text('#include <stdio.h>\n#include "w2s_kernels.h"\n#define W2S_A4 __attribute__((aligned(4)))\n'
                      + declarations + "int main(void) {\n" + body + "\nreturn 0;\n}\n")
    exe = tmp_path / "case"
    subprocess.run(["cc", *STRICT_FLAGS, "-I", CSRC, "-o", exe, source, CSRC / "w2s_kernels.c"], check=True,
                   capture_output=True, text=True)
    return [int(v) for v in subprocess.run([exe], check=True, capture_output=True, text=True).stdout.split()]


@pytest.mark.parametrize("c_in, c_out, k, rows, width", [(1, 13, 3, 5, 26), (13, 13, 3, 4, 26), (13, 13, 3, 3, 13),
                                                         (13, 13, 1, 2, 13), (33, 33, 3, 3, 26), (12, 7, 3, 3, 9)])
def test_convolution_equals_qlinearconv(c_in, c_out, k, rows, width, tmp_path):
    rng = np.random.default_rng(c_in * 100 + c_out + k)
    x = rng.integers(0, 256, (1, c_in, rows, width)).astype(np.uint8)
    w = rng.integers(-64, 65, (c_out, c_in, k, k)).astype(np.int8)
    b = rng.integers(-20000, 20000, c_out).astype(np.int32)
    xs, ws, ys = np.float32(rng.uniform(0.01, 0.5)), np.float32(rng.uniform(0.001, 0.05)), np.float32(rng.uniform(0.05, 2))
    xz, yz = np.uint8(rng.integers(0, 256)), np.uint8(rng.integers(0, 256))
    nodes = [helper.make_node("DequantizeLinear", ["x", "xs", "xz"], ["xf"]),
             helper.make_node("DequantizeLinear", ["w", "ws", "wz"], ["wf"]),
             helper.make_node("DequantizeLinear", ["b", "bs", "bz"], ["bf"]),
             helper.make_node("Conv", ["xf", "wf", "bf"], ["yf"], pads=[k // 2] * 4),
             helper.make_node("QuantizeLinear", ["yf", "ys", "yz"], ["y"])]
    expected = run_onnx(nodes, {"x": x}, {"xs": xs, "xz": xz, "w": w, "ws": ws, "wz": np.int8(0), "b": b,
                                          "bs": np.float32(xs * ws), "bz": np.int32(0), "ys": ys, "yz": yz})[0]
    packed, run = pack_conv_weight(w)
    scale = np.full(c_out, (xs * ws) / ys, np.float32)
    row = (width + 2) * c_in + 4
    declarations = (c_array("uint8_t", "x", x.transpose(0, 2, 3, 1)) + c_array("int8_t", "weight", packed)
                    + c_array("int32_t", "bias", np.concatenate([b, [0]])) + c_array("float", "scale", scale)
                    + f"static int16_t rows[{rows}][{row}];\nstatic const int16_t zeros[{row}];\n"
                    f"static int16_t out[{(width + 2) * c_out + 4}];\nstatic uint8_t q[{width * c_out}];\n")
    body = f"""
    const w2s_conv conv = {{{c_in}, {c_out}, {k}, {run}, weight, bias, scale, {yz}, 0, 0}};
    int t, i;
    for (t = 0; t < {rows}; t++) w2s_expand(x + t * {width * c_in}, {width * c_in}, {xz}, rows[t] + {c_in});
    for (t = 0; t < {rows}; t++) {{
        const int16_t *r[3];
        r[0] = {'t > 0 ? rows[t - 1] : zeros' if k == 3 else 'rows[t]'};
        r[1] = {'rows[t]' if k == 3 else 'zeros'};
        r[2] = {f't + 1 < {rows} ? rows[t + 1] : zeros' if k == 3 else 'zeros'};
        w2s_conv_row(&conv, r, {width}, out, q);
        for (i = 0; i < {width * c_out}; i++) printf("%d ", q[i]);
    }}"""
    got = np.array(run_c(body, declarations, tmp_path)).reshape(rows, width, c_out).transpose(2, 0, 1)
    np.testing.assert_array_equal(got, expected)


def test_requantisation_table_equals_dequantize_relu_quantize():
    q = np.arange(256, dtype=np.uint8)[None, :]
    for s_in, z_in, s_out, z_out in [(0.037, 131, 0.021, 0), (0.5, 0, 0.5, 0), (0.0123, 255, 0.7, 3), (1.3, 17, 0.011, 0)]:
        nodes = [helper.make_node("DequantizeLinear", ["x", "s1", "z1"], ["f"]), helper.make_node("Relu", ["f"], ["r"]),
                 helper.make_node("QuantizeLinear", ["r", "s2", "z2"], ["y"])]
        expected = run_onnx(nodes, {"x": q}, {"s1": np.float32(s_in), "z1": np.uint8(z_in), "s2": np.float32(s_out),
                                              "z2": np.uint8(z_out)})[0]
        np.testing.assert_array_equal(requantisation_table(np.float32(s_in), z_in, np.float32(s_out), z_out, relu=True), expected)


def test_max_pool_equals_onnxruntime_on_relu_outputs(tmp_path):
    rng = np.random.default_rng(5)
    rows, width, channels, zero = 5, 26, 13, 0
    x = rng.integers(0, 256, (1, channels, rows, width)).astype(np.uint8)  # ReLU outputs: all >= the zero point
    nodes = [helper.make_node("DequantizeLinear", ["x", "s", "z"], ["f"]),
             helper.make_node("MaxPool", ["f"], ["p"], kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1]),
             helper.make_node("QuantizeLinear", ["p", "s", "z"], ["y"])]
    expected = run_onnx(nodes, {"x": x}, {"s": np.float32(0.05), "z": np.uint8(zero)})[0]
    out_width = (width + 1) // 2
    row = (width + 2) * channels + 4
    declarations = (c_array("uint8_t", "x", x.transpose(0, 2, 3, 1))
                    + f"static int16_t rows[{rows}][{row}];\nstatic const int16_t zeros[{row}];\n"
                    f"static int16_t out[{(out_width + 2) * channels + 4}];\n")
    body = f"""
    int t, u, i;
    for (t = 0; t < {rows}; t++) w2s_expand(x + t * {width * channels}, {width * channels}, {zero}, rows[t] + {channels});
    for (u = 0; 2 * u < {rows}; u++) {{
        const int16_t *r[3];
        r[0] = u > 0 ? rows[2 * u - 1] : zeros;
        r[1] = rows[2 * u];
        r[2] = 2 * u + 1 < {rows} ? rows[2 * u + 1] : zeros;
        w2s_maxpool_row(r, {width}, {channels}, {zero}, 0, {zero}, out);
        for (i = 0; i < {out_width * channels}; i++) printf("%d ", out[{channels} + i] + {zero});
    }}"""
    got = np.array(run_c(body, declarations, tmp_path)).reshape(-1, out_width, channels).transpose(2, 0, 1)
    np.testing.assert_array_equal(got, expected)


def test_quantize_equals_quantizelinear(tmp_path):
    rng = np.random.default_rng(7)
    x = np.concatenate([rng.uniform(-120, 60, 2000), np.arange(-40, 40) * 0.25]).astype(np.float32)[None]  # ties included
    scale, zero = np.float32(0.25), 160
    expected = run_onnx([helper.make_node("QuantizeLinear", ["x", "s", "z"], ["y"])], {"x": x},
                        {"s": scale, "z": np.uint8(zero)})[0]
    body = f"int i; for (i = 0; i < {x.size}; i++) printf(\"%d \", w2s_quantize(x[i], {float(scale):.9g}f, {zero}));"
    np.testing.assert_array_equal(run_c(body, c_array("float", "x", x), tmp_path), expected)


def test_log_and_exp_are_within_two_ulp(tmp_path):
    """Inputs and results go through their bit patterns, so the comparison is exact."""
    source = tmp_path / "math.c"
    source.write_text("""#include <stdio.h>
#include <stdint.h>
#include "w2s_math.h"
int main(void) {
    uint32_t u; union { uint32_t u; float f; } x, y; int i;
    for (u = 0x00800000u; u < 0x7F000000u; u += 104729u) { x.u = u; y.f = w2s_log(x.f); printf("%lu %lu\\n", (unsigned long)x.u, (unsigned long)y.u); }
    for (i = 0; i <= 20000; i++) { x.f = -87.0f + 95.0f * (float)i / 20000.0f; y.f = w2s_exp(x.f); printf("%lu %lu\\n", (unsigned long)x.u, (unsigned long)y.u); }
    return 0;
}
""")
    exe = tmp_path / "math"
    subprocess.run(["cc", *STRICT_FLAGS, "-I", CSRC, "-o", exe, source, CSRC / "w2s_math.c"], check=True)
    out = subprocess.run([exe], check=True, capture_output=True, text=True).stdout
    bits = np.array([line.split() for line in out.splitlines()], dtype=np.uint32).view(np.float32).astype(np.float64)
    n_log = len(range(0x00800000, 0x7F000000, 104729))
    for (x, got), fn in ((bits[:n_log].T, np.log), (bits[n_log:].T, np.exp)):
        want = fn(x)
        ulp = np.spacing(np.abs(want).astype(np.float32)).astype(np.float64)
        ulp[want == 0] = np.spacing(np.float32(1))  # log(1) = 0
        assert np.max(np.abs(got - want) / ulp) <= 2.0
