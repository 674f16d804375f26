"""The GPU paths, run once on a lent GPU: labelling in half precision with a real-size Dawn (random
weights), training students on the GPU, and DDP over NCCL under torchrun.

    python bench/gpu_check.py --out results/gpu     # needs a CUDA device; prints and writes gpu_check.json

What it measures (all with the package's own commands, as a user runs them):
1. ``wav2small label --device cuda`` (half precision, the default on GPU) and ``--fp32`` on the same
   crops: clips/s of each, the bare half-precision forward on preloaded batches for the ratio, and
   how far half-precision labels are from fp32 ones (max |difference|, CCC per dimension).
2. ``wav2small train --device cuda`` for wav2small and mobilenetv3-small: training clips/s.
3. ``torchrun --nproc_per_node=1`` of ``wav2small train --device cuda``: the NCCL process group
   (one GPU: NCCL refuses two ranks on one device, so world size 1 is what a one-GPU machine can check).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

from wav2small.contract import LABELS, SAMPLING_RATE
from wav2small.metrics import concordance_cc
from wav2small.store import LabelStore
from wav2small.testing import random_dawn, write_audio_dir


def run(command: list[str], log: Path, env=None) -> float:
    """Run a package command, its output to ``log``; returns wall seconds (raises on failure)."""
    start = time.perf_counter()
    with open(log, "w") as f:
        done = subprocess.run(command, stdout=f, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})})
    seconds = time.perf_counter() - start
    if done.returncode:
        raise RuntimeError(f"{' '.join(command)} failed ({done.returncode}); end of {log}:\n{log.read_text()[-3000:]}")
    return seconds


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True, help="folder for the work files and gpu_check.json")
    parser.add_argument("--clips", type=int, default=512, help="files to label (one 4 s crop each)")
    parser.add_argument("--crop-dur", type=float, default=4.0)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--steps", type=int, default=300, help="training steps per student")
    parser.add_argument("--device", default="cuda", help="cuda; cpu only to try this script out (gloo instead of NCCL)")
    args = parser.parse_args()
    if args.device == "cuda" and not torch.cuda.is_available():
        sys.exit("gpu_check: no CUDA device")
    cuda = args.device == "cuda"
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    py = [sys.executable, "-m", "wav2small"]
    result = {"gpu": torch.cuda.get_device_name(0) if cuda else None, "torch": torch.__version__, "cuda": torch.version.cuda,
              "python": platform.python_version(), "cpu": platform.processor() or platform.machine()}
    print(json.dumps(result), flush=True)

    # 1. labelling: a real-size Dawn (wav2vec2-large-robust-12 + head, random weights) in its published format
    teacher_dir = random_dawn().save_pretrained(out / "dawn-large-random")
    write_audio_dir(out / "audio", args.clips, seconds=(args.crop_dur + 0.1, args.crop_dur + 0.3))
    label = [*py, "label", str(out / "audio"), "--teacher", str(teacher_dir), "--crop-dur", str(args.crop_dur),
             "--batch-size", str(args.batch_size), "--device", args.device, "--quiet"]
    seconds = {}
    for name, extra in (("half", []), ("fp32", ["--fp32"])):  # on CPU both are fp32 (a try-out)
        seconds[name] = run([*label, "--out", str(out / f"labels_{name}"), *extra], out / f"label_{name}.log")
    frames = {name: LabelStore(out / f"labels_{name}").read().sort_values(["file", "start"]) for name in seconds}
    half, full = (frames[k][list(LABELS)].to_numpy(np.float64) for k in ("half", "fp32"))
    result["label"] = {
        "clips": args.clips, "crop_seconds": args.crop_dur, "batch_size": args.batch_size,
        "clips_per_s": {k: args.clips / v for k, v in seconds.items()},
        "half_vs_fp32_max_abs_diff": float(np.abs(half - full).max()),
        "half_vs_fp32_ccc": dict(zip(LABELS, np.round(concordance_cc(full, half), 6).tolist())),
        "fp32_output_std": dict(zip(LABELS, np.round(full.std(axis=0), 6).tolist())),
    }
    dtype = torch.float16 if cuda else torch.float32  # half precision is a GPU path; the CPU try-out runs fp32
    teacher = random_dawn().to(args.device, dtype).eval()
    batch = torch.randn(args.batch_size, int(args.crop_dur * SAMPLING_RATE), device=args.device, dtype=dtype) * 0.1
    synchronize = torch.cuda.synchronize if cuda else (lambda: None)
    with torch.inference_mode():
        for _ in range(3 if cuda else 1):
            teacher(batch)
        synchronize()
        start, repeats = time.perf_counter(), 10 if cuda else 1
        for _ in range(repeats):
            teacher(batch)
        synchronize()
    bare = repeats * args.batch_size / (time.perf_counter() - start)
    result["label"]["bare_half_forward_clips_per_s"] = bare
    result["label"]["pipeline_over_bare_half"] = result["label"]["clips_per_s"]["half"] / bare
    del teacher
    print(json.dumps(result["label"]), flush=True)

    # 2. training on the GPU
    result["train"] = {}
    for student in ("wav2small", "mobilenetv3-small"):
        run_dir = out / f"train_{student}"
        run([*py, "train", str(out / "labels_half"), "--out", str(run_dir), "--student", student, "--device", args.device,
             "--steps", str(args.steps), "--batch-size", "64", "--quiet"], out / f"train_{student}.log")
        rows = (run_dir / "log.csv").read_text().splitlines()
        header, last = rows[0].split(","), rows[-1].split(",")
        result["train"][student] = {"steps": args.steps, "batch_size": 64,
                                    "clips_per_s": float(last[header.index("clips_per_s")]),
                                    "last_valid_mean": json.loads((run_dir / "last" / "training.json").read_text()).get("valid_mean")}
        print(student, json.dumps(result["train"][student]), flush=True)

    # 3. DDP over NCCL (world size 1 on one GPU)
    run_dir = out / "train_nccl"
    seconds = run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=1", "-m", "wav2small",
                   "train", str(out / "labels_half"), "--out", str(run_dir), "--device", args.device, "--steps", "50",
                   "--batch-size", "64", "--quiet"], out / "train_nccl.log", env={"NCCL_DEBUG": "INFO"})
    config = json.loads((run_dir / "config.json").read_text())
    result["nccl"] = {"world_size": config.get("world_size"), "seconds": seconds,
                      "backend_log": [line for line in (out / "train_nccl.log").read_text().splitlines() if "NCCL INFO" in line][:8]}
    print(json.dumps(result["nccl"]), flush=True)
    (out / "gpu_check.json").write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
