"""Streaming Wav2Small against the offline model: memory, compute per second of audio, latency.

    python bench/streaming.py --students wav2small wav2small-72k --seconds 60

For every preset (weights fitted to acoustic targets, running prenorm; speed and memory do not
depend on the values), on one thread, side by side in one run:

- state bytes and per-chunk peak activation bytes of the streaming graphs (fp32 and int8 with int8
  activations in every body layer) against the offline graph's peak activations for 5 s;
- compute (CPU time of this process, one thread) per second of audio of the torch engine
  (``wav2small.Stream``, 512-sample chunks, an estimate every 0.5 s) and of ``model.stream.onnx``
  in onnxruntime, each against the offline model on the same audio in one pass (torch,
  onnxruntime), and against the naive way to stream: the offline model re-run on the last 5 s
  every 0.5 s;
- the latency (wall time) of one 32 ms chunk of ``model.stream.int8.onnx`` (and fp32) on one thread;
- the same fp32 graph exported with 0.512 s chunks: what the per-call overhead of 32 ms chunks costs.

Prints the CPU and the load average before and after, a Markdown table, and writes both with the
JSON to --out.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from wav2small import Stream, create_student, export_onnx
from wav2small.contract import FOOTPRINT_FILE, FP32_FILE, STREAM_FP32_FILE, STREAM_INT8_FILE
from wav2small.export.streaming import export_stream
from wav2small.testing import fit_student, synth_speech, write_audio_dir

HOP = 0.5
WINDOW = 5.0  # seconds re-run every hop by the naive streamer
BIG_CHUNK = 512  # ms: the chunk of the graph that shows the per-call overhead


def cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor()


def load_average() -> list[float]:
    return [float(v) for v in Path("/proc/loadavg").read_text().split()[:3]]


def best_of(function, repeats: int) -> float:
    """Smallest CPU time of this process over ``repeats`` calls, in seconds. CPU time, not wall time:
    on a shared machine a run of many short calls is preempted more often than one long call, which
    inflates wall-time ratios; with one thread the CPU time is the compute itself."""
    times = []
    for _ in range(repeats):
        started = time.process_time()
        function()
        times.append(time.process_time() - started)
    return min(times)


def session(path):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads, options.inter_op_num_threads = 1, 1
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def fitted(preset: str):
    torch.manual_seed(0)
    clips = [synth_speech(1.0, 300 + i) for i in range(48)]
    return fit_student(create_student(preset, prenorm="running"), clips).eval()


def bench_student(preset: str, seconds: float, repeats: int, folder: Path) -> dict:
    model = fitted(preset)
    audio = write_audio_dir(folder / "speech", 40, seconds=2.0, seed=7)
    # the int8 checks are reported, not enforced: here only speed and memory count
    report = export_onnx(model, folder / "export", int8=True, calibration=audio, activations="all", streaming=True,
                         min_pearson=0.0, min_ccc=0.0)
    prints = json.loads((folder / "export" / FOOTPRINT_FILE).read_text())
    x = np.concatenate([synth_speech(5.0, 1000 + i) * (0.2 + i % 4) for i in range(int(np.ceil(seconds / 5)))])
    x = x[: int(seconds * 16000) // 512 * 512]
    audio_seconds = len(x) / 16000
    starts = np.arange(HOP, audio_seconds + 1e-9, HOP)
    windows = [x[max(0, int((t - WINDOW) * 16000)) : int(t * 16000)] for t in starts]

    def torch_offline():
        with torch.inference_mode():
            model(torch.from_numpy(x)[None])

    def torch_stream():
        stream = Stream(model, hop=HOP)
        for i in range(0, len(x), 512):
            stream.feed(x[i : i + 512])

    def torch_naive():
        with torch.inference_mode():
            for w in windows:
                model(torch.from_numpy(w)[None])

    big = BIG_CHUNK * 16000 // 1000 // 512 * 512  # samples
    export_stream(model, folder / "big", int8=False, chunk=big)
    offline = session(folder / "export" / FP32_FILE)
    streams = {name: session(folder / "export" / file) for name, file in (("fp32", STREAM_FP32_FILE), ("int8", STREAM_INT8_FILE))}
    initial = {name: Stream(folder / "export", precision=name).state for name in streams}
    streams["big"] = session(folder / "big" / STREAM_FP32_FILE)
    initial["big"] = Stream(folder / "big" / STREAM_FP32_FILE).state

    def ort_offline():
        offline.run(None, {"signal": x[None]})

    def ort_stream(name):
        state = dict(initial[name])
        run = streams[name]
        names = list(state)
        step = big if name == "big" else 512
        for i in range(0, len(x) - step + 1, step):
            out = run.run(None, {"chunk": x[None, i : i + step], **state})
            state = dict(zip(names, out[1:]))

    def ort_naive():
        for w in windows:
            offline.run(None, {"signal": w[None]})

    timing = {
        "torch_offline": best_of(torch_offline, repeats), "torch_stream": best_of(torch_stream, repeats),
        "torch_naive": best_of(torch_naive, 1), "ort_offline": best_of(ort_offline, repeats),
        "ort_stream_fp32": best_of(lambda: ort_stream("fp32"), repeats),
        "ort_stream_int8": best_of(lambda: ort_stream("int8"), repeats), "ort_naive": best_of(ort_naive, 1),
        "ort_stream_fp32_big_chunks": best_of(lambda: ort_stream("big"), repeats) * len(x) / (len(x) // big * big),
    }
    per_second = {k: v / audio_seconds * 1000 for k, v in timing.items()}  # ms of compute per s of audio

    chunk_ms = {}
    for name, run in ((k, v) for k, v in streams.items() if k != "big"):
        state = dict(initial[name])
        names = list(state)
        calls = []
        for i in range(0, len(x), 512):
            started = time.perf_counter()
            out = run.run(None, {"chunk": x[None, i : i + 512], **state})
            calls.append(time.perf_counter() - started)
            state = dict(zip(names, out[1:]))
        calls = np.array(calls[10:]) * 1000
        chunk_ms[name] = {"median": float(np.median(calls)), "p90": float(np.percentile(calls, 90)), "min": float(calls.min())}
    stream_prints = {k: v for k, v in prints.items() if "stream" in k}
    return {
        "preset": preset, "parameters": model.num_parameters(), "audio_seconds": audio_seconds,
        "int8_vs_fp32": {"offline": {k: report["int8"][k] for k in ("pearson", "ccc")},
                         "stream": {k: report["streaming"]["int8"][k] for k in ("pearson", "ccc")}},
        "ms_per_audio_second": per_second,
        "ratios": {"torch_stream_vs_offline": timing["torch_stream"] / timing["torch_offline"],
                   "torch_naive_vs_offline": timing["torch_naive"] / timing["torch_offline"],
                   "ort_stream_fp32_vs_offline": timing["ort_stream_fp32"] / timing["ort_offline"],
                   "ort_stream_int8_vs_offline": timing["ort_stream_int8"] / timing["ort_offline"],
                   "ort_stream_fp32_big_chunks_vs_offline": timing["ort_stream_fp32_big_chunks"] / timing["ort_offline"],
                   "ort_naive_vs_offline": timing["ort_naive"] / timing["ort_offline"]},
        "chunk_ms": chunk_ms,
        "memory": {"offline_peak_activation_bytes_5s": prints[FP32_FILE]["peak_activation_bytes"]["5s"],
                   **{name: {"state_bytes": fp["stream"]["state_bytes"], "peak_activation_bytes": fp["stream"]["peak_activation_bytes"],
                             "macs_per_second": fp["macs_per_second"]} for name, fp in stream_prints.items()}},
    }


def markdown(results: list[dict], info: dict) -> str:
    lines = [f"# Streaming benchmark ({info['cpu']}, {info['threads']} thread, torch {info['torch']}, onnxruntime {info['onnxruntime']})", "",
             f"Load average before {info['load_before']}, after {info['load_after']} (2 cores: above ~1 the machine was shared).", "",
             "## Memory", "", "| student | offline peak activations, 5 s | stream fp32: state / per-chunk activations | stream int8: state / per-chunk activations |",
             "|---|---|---|---|"]
    for r in results:
        m = r["memory"]
        lines.append(f"| {r['preset']} | {m['offline_peak_activation_bytes_5s'] / 1024:,.0f} KiB | "
                     f"{m[STREAM_FP32_FILE]['state_bytes']:,} B / {m[STREAM_FP32_FILE]['peak_activation_bytes'] / 1024:,.1f} KiB | "
                     f"{m[STREAM_INT8_FILE]['state_bytes']:,} B / {m[STREAM_INT8_FILE]['peak_activation_bytes'] / 1024:,.1f} KiB |")
    lines += ["", f"## Compute per second of audio (CPU time; {results[0]['audio_seconds']:.0f} s of audio, estimate every {HOP} s, 512-sample chunks)", "",
              "| student | torch offline | torch stream (ratio) | torch naive: last 5 s every 0.5 s (ratio) | ORT offline | ORT stream fp32 (ratio) | ORT stream int8 (ratio) | ORT stream fp32, 0.512 s chunks (ratio) | ORT naive (ratio) |",
              "|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        t, q = r["ms_per_audio_second"], r["ratios"]
        lines.append(f"| {r['preset']} | {t['torch_offline']:.2f} ms | {t['torch_stream']:.2f} ms ({q['torch_stream_vs_offline']:.2f}x) | "
                     f"{t['torch_naive']:.1f} ms ({q['torch_naive_vs_offline']:.1f}x) | {t['ort_offline']:.2f} ms | "
                     f"{t['ort_stream_fp32']:.2f} ms ({q['ort_stream_fp32_vs_offline']:.2f}x) | {t['ort_stream_int8']:.2f} ms "
                     f"({q['ort_stream_int8_vs_offline']:.2f}x) | {t['ort_stream_fp32_big_chunks']:.2f} ms "
                     f"({q['ort_stream_fp32_big_chunks_vs_offline']:.2f}x) | {t['ort_naive']:.1f} ms ({q['ort_naive_vs_offline']:.1f}x) |")
    lines += ["", "int8 vs fp32 on the held-out clips (Pearson / CCC, lowest dimension): " + "; ".join(
        f"{r['preset']} offline {min(r['int8_vs_fp32']['offline']['pearson'].values()):.4f} / {min(r['int8_vs_fp32']['offline']['ccc'].values()):.4f}, "
        f"stream {min(r['int8_vs_fp32']['stream']['pearson'].values()):.4f} / {min(r['int8_vs_fp32']['stream']['ccc'].values()):.4f}"
        for r in results)]
    lines += ["", "## One 32 ms chunk in onnxruntime, one thread (wall time: median / 90th percentile / min)", "",
              "| student | model.stream.onnx | model.stream.int8.onnx |", "|---|---|---|"]
    for r in results:
        c = r["chunk_ms"]
        lines.append(f"| {r['preset']} | " + " | ".join(f"{c[k]['median']:.3f} / {c[k]['p90']:.3f} / {c[k]['min']:.3f} ms" for k in ("fp32", "int8")) + " |")
    return "\n".join(lines) + "\n"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--students", nargs="+", default=["wav2small", "wav2small-72k"])
    parser.add_argument("--seconds", type=float, default=60.0, help="audio streamed (default: %(default)s)")
    parser.add_argument("--repeats", type=int, default=3, help="repeats of each timing; the best counts (default: %(default)s)")
    parser.add_argument("--out", default="bench/results/streaming", help="results prefix (.md and .json)")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    import onnxruntime

    info = {"cpu": cpu_model(), "threads": 1, "torch": torch.__version__, "onnxruntime": onnxruntime.__version__,
            "load_before": load_average()}
    with tempfile.TemporaryDirectory() as tmp:
        results = [bench_student(preset, args.seconds, args.repeats, Path(tmp) / preset) for preset in args.students]
    info["load_after"] = load_average()
    text = markdown(results, info)
    print(text)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out + ".md").write_text(text)
    Path(args.out + ".json").write_text(json.dumps({"info": info, "results": results}, indent=2) + "\n")


if __name__ == "__main__":
    main()
