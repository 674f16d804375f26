"""Size, latency, memory and arithmetic rate of exported students on one CPU thread, 5 s of audio.

    python bench/export_latency.py --students wav2small wav2small-72k --repeats 50

For every preset: export (untrained weights; latency and size do not depend on the values) to
fp32 and int8 (``--activations auto`` and ``all``), then time torch eager, onnxruntime fp32 and
onnxruntime int8 at batch 1 on one thread, measure each one's peak memory in a fresh process and
set the achieved multiply-accumulates per second against this core's peak. The int8 checks are
not enforced here (random weights); tests/test_export.py checks them on a fitted model.
Prints a Markdown table and writes it, with the JSON, to --out.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from wav2small import create_student, export_onnx, list_students
from wav2small.testing import synth_speech, write_audio_dir

SECONDS = 5.0


def cpu_peak() -> dict:
    """This core's peak multiply-accumulates per second, from its instruction set and clock.

    Assumptions (they set the ceiling): with AVX-512 on AMD Zen 5 (family 26) two 512-bit FMA
    pipes = 32 fp32 MAC per cycle, and AVX-512 VNNI (vpdpbusd, 64 int8 MAC per instruction, two
    pipes) = 128 int8 MAC per cycle; AVX2 + FMA only: 2 x 8 = 16 fp32 and, without VNNI, 2 x 16 =
    32 int8 MAC per cycle (vpmaddubsw + vpmaddwd). Clock: the TSC (base) frequency, the only one a
    virtual machine shows; the core boosts above it, so the measured GEMM ceilings can exceed these.
    """
    info = Path("/proc/cpuinfo").read_text()
    flags = set(re.search(r"^flags\s*:\s*(.*)$", info, re.M).group(1).split())
    model = re.search(r"^model name\s*:\s*(.*)$", info, re.M).group(1)
    family = int(re.search(r"^cpu family\s*:\s*(\d+)", info, re.M).group(1))
    mhz = float(re.search(r"^cpu MHz\s*:\s*([\d.]+)", info, re.M).group(1))
    wide = "avx512f" in flags and (family >= 26 or "GenuineIntel" in info)  # Zen 4 splits 512-bit ops in two
    fp32 = 32 if wide else 16
    int8 = 128 if "avx512_vnni" in flags and wide else (64 if "avx512_vnni" in flags or "avx_vnni" in flags else 32)
    return {"cpu": model, "family": family, "ghz": round(mhz / 1000, 3), "avx2": "avx2" in flags, "fma": "fma" in flags,
            "avx512f": "avx512f" in flags, "avx512_vnni": "avx512_vnni" in flags, "avx_vnni": "avx_vnni" in flags,
            "fp32_mac_per_cycle": fp32, "int8_mac_per_cycle": int8,
            "fp32_peak_gmacs": round(fp32 * mhz / 1000, 1), "int8_peak_gmacs": round(int8 * mhz / 1000, 1)}


def gemm_ceiling_gmacs(*, int8: bool, n: int = 1024) -> float:
    """What onnxruntime's own kernels (MLAS) reach on one thread for an n x n x n matrix product, in
    fp32 (MatMul) or int8 (QLinearMatMul, uint8 x int8): the practical ceiling for that precision."""
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    if int8:
        weights = [numpy_helper.from_array(rng.integers(-127, 127, (n, n)).astype(np.int8), "b")]
        weights += [numpy_helper.from_array(np.array(v, dtype), name) for name, v, dtype in (
            ("sa", 0.01, np.float32), ("za", 128, np.uint8), ("sb", 0.01, np.float32), ("zb", 0, np.int8),
            ("sy", 0.1, np.float32), ("zy", 128, np.uint8))]
        node = helper.make_node("QLinearMatMul", ["a", "sa", "za", "b", "sb", "zb", "sy", "zy"], ["c"])
        kind, x = TensorProto.UINT8, rng.integers(0, 255, (n, n)).astype(np.uint8)
    else:
        weights = [numpy_helper.from_array(rng.standard_normal((n, n)).astype(np.float32), "b")]
        node = helper.make_node("MatMul", ["a", "b"], ["c"])
        kind, x = TensorProto.FLOAT, rng.standard_normal((n, n)).astype(np.float32)
    graph = helper.make_graph([node], "gemm", [helper.make_tensor_value_info("a", kind, [n, n])],
                              [helper.make_tensor_value_info("c", kind, [n, n])], weights)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "gemm.onnx"
        path.write_bytes(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)]).SerializeToString())
        session = ort_session(path)
    best = latency_ms(lambda: session.run(None, {"a": x}), 10)["min_ms"] / 1000
    return round(n ** 3 / best / 1e9, 1)


def _timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def ort_session(path, level="all"):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = {"basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
                                        "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
                                        "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL}[level]
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def latency_ms(fn, repeats: int) -> dict:
    for _ in range(5):
        fn()
    times = [_timed(fn) for _ in range(repeats)]
    return {"min_ms": round(1000 * min(times), 3), "median_ms": round(1000 * float(np.median(times)), 3)}


def peak_memory_mb(kind: str, target: str) -> float:
    """Peak resident memory added by loading and running one 5 s inference, in a fresh process."""
    out = subprocess.run([sys.executable, __file__, "--measure-memory", kind, target], capture_output=True, text=True, check=True)
    return float(out.stdout.strip().splitlines()[-1])


def _measure_memory(kind: str, target: str) -> None:
    import onnxruntime  # noqa: F401  imported before the baseline: count the model, not the library

    def status(key):
        return int(re.search(rf"^{key}:\s*(\d+) kB", Path("/proc/self/status").read_text(), re.M).group(1)) / 1024

    torch.set_num_threads(1)
    x = np.zeros((1, int(SECONDS * 16000)), np.float32)
    x[0] = synth_speech(SECONDS, 0)
    base = status("VmRSS")
    if kind == "torch":
        from wav2small.models import Student

        model = Student.from_pretrained(target)
        with torch.inference_mode():
            model(torch.from_numpy(x))
    else:
        ort_session(target).run(None, {"signal": x})
    print(round(status("VmHWM") - base, 2))


def bench_student(name: str, work: Path, calibration: Path, repeats: int, peak: dict) -> dict:
    torch.manual_seed(0)
    student = create_student(name).eval()
    folder = work / name
    student.save_pretrained(folder / "checkpoint")
    loose = {"min_pearson": -1.0, "min_ccc": -1.0}  # random weights: measured, not enforced
    loose["clip_seconds"] = 1.0
    report = export_onnx(student, folder / "auto", int8=True, calibration=calibration, **loose)
    export_onnx(student, folder / "all", int8=True, calibration=calibration, activations="all", **loose)
    prints = json.loads((folder / "auto" / "footprint.json").read_text())
    macs = prints["model.onnx"]["macs"][f"{SECONDS:g}s"]
    x = synth_speech(SECONDS, 1)[None]
    torch.set_num_threads(1)
    tensor = torch.from_numpy(x)
    with torch.inference_mode():
        rows = {"torch eager": latency_ms(lambda: student(tensor), repeats)}
    for label, path, level in (("ORT fp32", folder / "auto" / "model.onnx", "all"),
                               ("ORT fp32 (extended opt.)", folder / "auto" / "model.onnx", "extended"),
                               ("ORT int8 auto", folder / "auto" / "model.int8.onnx", "all"),
                               ("ORT int8 all", folder / "all" / "model.int8.onnx", "all")):
        session = ort_session(path, level)
        rows[label] = latency_ms(lambda: session.run(None, {"signal": x}), repeats)
        rows[label]["file_bytes"] = path.stat().st_size
    rows["torch eager"]["peak_mb"] = peak_memory_mb("torch", str(folder / "checkpoint"))
    rows["ORT fp32"]["peak_mb"] = peak_memory_mb("onnx", str(folder / "auto" / "model.onnx"))
    rows["ORT int8 auto"]["peak_mb"] = peak_memory_mb("onnx", str(folder / "auto" / "model.int8.onnx"))
    rows["ORT int8 all"]["peak_mb"] = peak_memory_mb("onnx", str(folder / "all" / "model.int8.onnx"))
    for label, row in rows.items():
        row["gmacs"] = round(macs / (row["min_ms"] / 1000) / 1e9, 2)
        ceiling = peak["int8_gemm_gmacs"] if "int8" in label else peak["fp32_gemm_gmacs"]
        row["of_ceiling"] = round(row["gmacs"] / ceiling, 3)
    return {"name": name, "parameters": student.num_parameters(), "macs_5s": macs,
            "int8_activation_nodes": len(report["int8"]["int8_activation_nodes"]), "latency": rows,
            "peak_activation_bytes": prints["model.onnx"]["peak_activation_bytes"],
            "peak_activation_bytes_int8": prints["model.int8.onnx"]["peak_activation_bytes"]}


def markdown(results: list[dict], peak: dict) -> str:
    lines = [f"CPU: {peak['cpu']} (family {peak['family']}), {peak['ghz']} GHz TSC; AVX2 {peak['avx2']}, FMA {peak['fma']}, "
             f"AVX-512 {peak['avx512f']}, AVX-512 VNNI {peak['avx512_vnni']}. Single-core peak at the base clock (assumed): "
             f"{peak['fp32_peak_gmacs']} fp32 GMAC/s ({peak['fp32_mac_per_cycle']}/cycle), "
             f"{peak['int8_peak_gmacs']} int8 GMAC/s ({peak['int8_mac_per_cycle']}/cycle). Measured one-thread 1024^3 GEMM "
             f"with onnxruntime: fp32 {peak['fp32_gemm_gmacs']} GMAC/s, int8 {peak['int8_gemm_gmacs']} GMAC/s; "
             "'of ceiling' is against these measured GEMM rates.", "",
             f"Batch 1, {SECONDS:g} s of audio, one thread, best of the repeats (median in brackets); load average "
             f"during the run {peak['load']} on {os.cpu_count()} cores (other jobs widen the medians).", "",
             "| student | params | GMACs / 5 s | runtime | ms | file bytes | peak MB | GMAC/s | of ceiling |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        for label, row in r["latency"].items():
            lines.append(f"| {r['name']} | {r['parameters']:,} | {r['macs_5s'] / 1e9:.3f} | {label} | "
                         f"{row['min_ms']:.2f} ({row['median_ms']:.2f}) | {row.get('file_bytes', '')} | "
                         f"{row.get('peak_mb', '')} | {row['gmacs']} | {100 * row['of_ceiling']:.0f} % |")
    return "\n".join(lines) + "\n"


def main():
    if len(sys.argv) == 4 and sys.argv[1] == "--measure-memory":
        return _measure_memory(sys.argv[2], sys.argv[3])
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--students", nargs="+", default=list_students(), help="presets (default: all)")
    parser.add_argument("--repeats", type=int, default=50, help="timed runs per case (default: %(default)s)")
    parser.add_argument("--out", default="bench/results", help="folder for export_latency.md / .json")
    args = parser.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    peak = cpu_peak()
    peak.update(fp32_gemm_gmacs=gemm_ceiling_gmacs(int8=False), int8_gemm_gmacs=gemm_ceiling_gmacs(int8=True))
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        calibration = write_audio_dir(Path(tmp) / "speech", 24, seconds=(2.0, 4.0), seed=9)
        for name in args.students:
            results.append(bench_student(name, Path(tmp), calibration, args.repeats, peak))
            print(f"{name}: done", file=sys.stderr, flush=True)
    peak["load"] = " / ".join(f"{x:.1f}" for x in os.getloadavg())
    table = markdown(results, peak)
    print(table)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "export_latency.md").write_text(table)
    (out / "export_latency.json").write_text(json.dumps({"cpu": peak, "students": results}, indent=2) + "\n")


if __name__ == "__main__":
    main()
