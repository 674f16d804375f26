"""One int8 convolution layer on an emulated Cortex-M4F, three ways: the C bundle's kernel (SMLAD,
weights unpacked with SXTB16, three taps in one assembly block), a plain C loop as one would write
it, and, if ``emx-onnx-cgen`` is installed, the code that ONNX-to-C generator makes of the same
layer as a QLinearConv node.

    python bench/c_layer.py [--channels 13] [--width 26] [--rows 8]

The layer: a 3x3 convolution, channels -> channels, padding 1, over rows x width positions (the
card model's l2 is 13 -> 13 over 26 mel bands). Instructions are counted by QEMU (mps2-an386,
-icount shift=0) through SysTick; all three outputs must be identical. Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from wav2small.export.c import CSRC, pack_conv_weight
from wav2small.export.mcu import CORTEX_M4_FLAGS, QEMU, STRICT_FLAGS

HARNESS = r"""
#include <stdio.h>
#include <stdint.h>
#include "w2s_kernels.h"
#include "layer.h"
#define SYST_CSR (*(volatile uint32_t *)0xE000E010u)
#define SYST_RVR (*(volatile uint32_t *)0xE000E014u)
#define SYST_CVR (*(volatile uint32_t *)0xE000E018u)
#define ROW ((W + 2) * C + 4)
static int16_t rows[T][ROW];
static const int16_t zeros[ROW];
static int16_t expanded[ROW];
static uint8_t fast[T][W * C], plain[T][W * C];
#ifdef EMX
void model(const uint8_t x[1][C][T][W], uint8_t y[1][C][T][W]);
static uint8_t x_nchw[1][C][T][W], y_nchw[1][C][T][W];
#endif

/* the plain C loop: channels last, bounds checks, onnxruntime's requantisation */
static void plain_row(int t, uint8_t *out) {
    int oc, m, ic, dt, dm;
    for (m = 0; m < W; m++)
        for (oc = 0; oc < C; oc++) {
            int32_t acc = bias[oc];
            for (dt = -1; dt <= 1; dt++)
                for (dm = -1; dm <= 1; dm++)
                    for (ic = 0; ic < C; ic++) {
                        const int tt = t + dt, mm = m + dm;
                        if (tt >= 0 && tt < T && mm >= 0 && mm < W)
                            acc += ((int32_t)x_in[(tt * W + mm) * C + ic] - X_ZERO) * weight[((oc * C + ic) * 3 + dt + 1) * 3 + dm + 1];
                    }
            out[m * C + oc] = w2s_requantize(acc, scale[oc], Y_ZERO);
        }
}

static uint32_t ticks(uint32_t t0) { return (t0 - SYST_CVR) & 0xFFFFFFu; }

int main(void) {
    const w2s_conv conv = {C, C, 3, RUN, packed, bias, scale, Y_ZERO, 0, 0};
    const double macs = (double)T * W * C * C * 9;
    uint32_t t0, kernel, loop;
    long differ = 0;
    int t, i;
    SYST_RVR = 0xFFFFFFu, SYST_CVR = 0, SYST_CSR = 5;
    for (t = 0; t < T; t++) {
        for (i = 0; i < ROW; i++) rows[t][i] = 0;
        w2s_expand(x_in + t * W * C, W * C, X_ZERO, rows[t] + C);
    }
    t0 = SYST_CVR;
    for (t = 0; t < T; t++) {
        const int16_t *r[3];
        r[0] = t > 0 ? rows[t - 1] : zeros, r[1] = rows[t], r[2] = t + 1 < T ? rows[t + 1] : zeros;
        w2s_conv_row(&conv, r, W, expanded, fast[t]);
    }
    kernel = ticks(t0);
    t0 = SYST_CVR;
    for (t = 0; t < T; t++) plain_row(t, plain[t]);
    loop = ticks(t0);
    for (t = 0; t < T; t++)
        for (i = 0; i < W * C; i++) differ += fast[t][i] != plain[t][i];
    printf("kernel %lu\nplain %lu\n", 40ul * kernel, 40ul * loop);
#ifdef EMX
    {
        int c, m;
        uint32_t emx;
        for (t = 0; t < T; t++)
            for (m = 0; m < W; m++)
                for (c = 0; c < C; c++) x_nchw[0][c][t][m] = x_in[(t * W + m) * C + c];
        t0 = SYST_CVR;
        model(x_nchw, y_nchw);
        emx = ticks(t0);
        for (t = 0; t < T; t++)
            for (m = 0; m < W; m++)
                for (c = 0; c < C; c++) differ += y_nchw[0][c][t][m] != fast[t][m * C + c];
        printf("emx %lu\n", 40ul * emx);
    }
#endif
    printf("macs %.0f\ndiffer %ld\n", macs, differ);
    return 0;
}
"""


def c_array(ctype: str, name: str, values) -> str:
    return f"static const {ctype} {name}[] = {{{', '.join(str(v) for v in np.asarray(values).reshape(-1).tolist())}}};\n"


def layer_files(folder: Path, channels: int, width: int, rows: int, seed: int = 0) -> dict:
    """The layer's data header and, for emx-onnx-cgen, the same layer as a QLinearConv ONNX model."""
    rng = np.random.default_rng(seed)
    weight = rng.integers(-64, 65, (channels, channels, 3, 3)).astype(np.int8)  # 7-bit, as the export stores them
    bias = rng.integers(-2000, 2000, channels).astype(np.int32)
    x = rng.integers(0, 256, (rows, width, channels)).astype(np.uint8)
    x_scale, w_scale, y_scale, x_zero, y_zero = np.float32(0.05), np.float32(0.01), np.float32(0.4), 7, 3
    scale = np.full(channels, (x_scale * w_scale) / y_scale, np.float32)
    packed, run = pack_conv_weight(weight)
    padded_bias = np.zeros(channels + channels % 2, np.int32)
    padded_bias[:channels] = bias
    header = (f"#define C {channels}\n#define W {width}\n#define T {rows}\n#define RUN {run}\n"
              f"#define X_ZERO {x_zero}\n#define Y_ZERO {y_zero}\n"
              f"static const int8_t packed[] __attribute__((aligned(4))) = {{{', '.join(map(str, packed.tolist()))}}};\n"
              + c_array("int8_t", "weight", weight) + c_array("uint8_t", "x_in", x) + c_array("int32_t", "bias", padded_bias)
              + f"static const float scale[] = {{{', '.join(f'{v:.9g}f' for v in scale)}}};\n")
    (folder / "layer.h").write_text(header)
    inits = [numpy_helper.from_array(np.array(v), n) for v, n in
             [(x_scale, "xs"), (np.uint8(x_zero), "xz"), (w_scale, "ws"), (np.int8(0), "wz"), (y_scale, "ys"),
              (np.uint8(y_zero), "yz")]] + [numpy_helper.from_array(weight, "w"), numpy_helper.from_array(bias, "b")]
    node = helper.make_node("QLinearConv", ["x", "xs", "xz", "w", "ws", "wz", "ys", "yz", "b"], ["y"], pads=[1] * 4,
                            kernel_shape=[3, 3])
    shape = [1, channels, rows, width]
    graph = helper.make_graph([node], "layer", [helper.make_tensor_value_info("x", TensorProto.UINT8, shape)],
                              [helper.make_tensor_value_info("y", TensorProto.UINT8, shape)], inits)
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)]), str(folder / "layer.onnx"))
    return {"macs": rows * width * channels * channels * 9}


def measure(channels: int, width: int, rows: int) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        layer_files(folder, channels, width, rows)
        (folder / "main.c").write_text(HARNESS)
        sources = [folder / "main.c", CSRC / "w2s_kernels.c", CSRC / "cortex-m4/startup.c"]
        defines = []
        emx = shutil.which("emx-onnx-cgen")
        if emx:
            subprocess.run([emx, "compile", folder / "layer.onnx", folder / "emx.c", "--large-temp-threshold", "0",
                            "--large-weight-threshold", "0"], check=True, capture_output=True)
            sources.append(folder / "emx.c")
            defines.append("-DEMX")
        flags = [f for f in (*CORTEX_M4_FLAGS, *STRICT_FLAGS) if f != "-Werror"]  # the generated code warns
        subprocess.run(["arm-none-eabi-gcc", *flags, *defines, "-DW2S_SEMIHOSTING", "--specs=rdimon.specs", "-I", CSRC,
                        "-I", folder, "-T", CSRC / "cortex-m4/link.ld", "-o", folder / "layer.elf", *sources, "-lm"],
                       check=True, capture_output=True)
        out = subprocess.run([*QEMU, "-semihosting-config", "enable=on,target=native", "-kernel", folder / "layer.elf"],
                             check=True, capture_output=True, text=True, timeout=600).stdout
    values = dict(line.split() for line in out.splitlines() if line.strip())
    result = {k: int(float(v)) for k, v in values.items()}
    if result["differ"]:
        raise SystemExit(f"the implementations disagree on {result['differ']} outputs")
    return result


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--channels", type=int, default=13)
    parser.add_argument("--width", type=int, default=26, help="positions along mel (default: %(default)s)")
    parser.add_argument("--rows", type=int, default=8, help="time rows (default: %(default)s)")
    args = parser.parse_args(argv)
    r = measure(args.channels, args.width, args.rows)
    macs = r["macs"]
    print(f"3x3 convolution {args.channels} -> {args.channels}, {args.rows} x {args.width} positions, "
          f"{macs:,} multiply-accumulates (QEMU mps2-an386 Cortex-M4, instructions counted; outputs identical)\n")
    print("| implementation | instructions | per MAC | vs the kernel |\n|---|---|---|---|")
    for name, key in (("C bundle kernel (SMLAD)", "kernel"), ("plain C loop", "plain"), ("emx-onnx-cgen 1.4 QLinearConv", "emx")):
        if key in r:
            print(f"| {name} | {r[key]:,} | {r[key] / macs:.2f} | {r[key] / r['kernel']:.1f}x |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
