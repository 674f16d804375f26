"""Throughput of `wav2small label` with a real-size Dawn architecture (random weights, no download):
the full pipeline vs the bare model forward on preloaded tensors vs a naive one-file-at-a-time loop.

    python bench/label_throughput.py --clips 128 --crop-dur 1.0 --batch-size 16 --repeats 2

Prints clips/s of each, the pipeline / bare-forward ratio (goal >= 0.9) and the speed-up of the
pipeline over the naive loop (goal >= 1.5x). Clips are short by default so a run on a 2-core CPU
takes a few minutes; the ratios, not the absolute rates, are the point.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

from wav2small.audio import SAMPLING_RATE, load_audio
from wav2small.labels import crop_positions, label_audio
from wav2small.store import LabelStore
from wav2small.testing import random_dawn


def write_clips(folder: Path, count: int, crop_dur: float) -> list[Path]:
    """Speech-like files a little longer than one crop (so each gives exactly one centred crop)."""
    rng = np.random.default_rng(0)
    folder.mkdir(parents=True, exist_ok=True)
    files = []
    for i in range(count):
        n = int((crop_dur + rng.uniform(0.05, 0.4)) * SAMPLING_RATE)
        t = np.arange(n) / SAMPLING_RATE
        x = 0.1 * np.sin(2 * np.pi * rng.uniform(90, 250) * t) * (1 + np.sin(2 * np.pi * 4 * t)) + 0.01 * rng.normal(size=n)
        files.append(folder / f"clip{i:05d}.wav")
        sf.write(files[-1], x.astype(np.float32), SAMPLING_RATE, subtype="PCM_16")
    return files


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clips", type=int, default=128)
    parser.add_argument("--naive-clips", type=int, default=32, help="clips for the naive loop (its rate is per clip)")
    parser.add_argument("--repeats", type=int, default=3, help="interleaved runs; the best of each is reported")
    parser.add_argument("--crop-dur", type=float, default=1.0)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()

    teacher = random_dawn()
    crop = int(args.crop_dur * SAMPLING_RATE)
    print(f"Dawn architecture, random weights: {sum(p.numel() for p in teacher.parameters()) / 1e6:.0f}M parameters; "
          f"torch {torch.__version__}, {torch.get_num_threads()} threads; {args.clips} clips of {args.crop_dur} s, "
          f"batch {args.batch_size}, {args.workers} reader threads; best of {args.repeats} interleaved runs")
    # wall-clock clips/s, and CPU seconds per clip (all threads of this process): on a shared machine
    # other jobs' load moves the first a lot, the second much less
    rates = {"pipeline": [], "bare": [], "naive": []}
    cpu = {"pipeline": [], "bare": [], "naive": []}
    with tempfile.TemporaryDirectory() as tmp:
        files = write_clips(Path(tmp) / "audio", args.clips, args.crop_dur)
        crops = []
        for f in files:
            x = load_audio(f)
            ((a, b),) = crop_positions(0, len(x), crop)
            crops.append(x[a:b])
        batches = [torch.from_numpy(np.stack(crops[i : i + args.batch_size])) for i in range(0, len(crops), args.batch_size)]
        with torch.inference_mode():  # warm-up: first calls allocate
            teacher.forward_members(batches[0])

        for repeat in range(args.repeats):  # interleaved, so that load from other processes hits all alike
            # 1. the full pipeline: scan, read, crop, batch, forward, write Parquet shards
            out = Path(tmp) / f"labels{repeat}"
            start, used = time.perf_counter(), time.process_time()
            summary = label_audio(Path(tmp) / "audio", teacher, out, crop_dur=args.crop_dur, batch_size=args.batch_size,
                                  workers=args.workers, progress=False)
            rates["pipeline"].append(summary["clips"] / (time.perf_counter() - start))
            cpu["pipeline"].append((time.process_time() - used) / summary["clips"])
            assert summary["clips"] == args.clips and len(LabelStore(out).read()) == args.clips

            # 2. the bare forward on the same crops, preloaded
            start, used = time.perf_counter(), time.process_time()
            with torch.inference_mode():
                for batch in batches:
                    teacher.forward_members(batch)
            rates["bare"].append(len(crops) / (time.perf_counter() - start))
            cpu["bare"].append((time.process_time() - used) / len(crops))

            # 3. naive: load each file, take the same crop, run it alone
            start, used = time.perf_counter(), time.process_time()
            with torch.inference_mode():
                for f in files[: args.naive_clips]:
                    x = load_audio(f)
                    ((a, b),) = crop_positions(0, len(x), crop)
                    teacher(torch.from_numpy(x[a:b])[None])
            naive_count = min(args.naive_clips, len(files))
            rates["naive"].append(naive_count / (time.perf_counter() - start))
            cpu["naive"].append((time.process_time() - used) / naive_count)
            print(f"run {repeat + 1}: " + ", ".join(f"{k} {rates[k][-1]:.2f} clips/s ({cpu[k][-1]:.3f} cpu-s/clip)" for k in rates), flush=True)

    pipeline, bare, naive = (max(rates[k]) for k in ("pipeline", "bare", "naive"))
    cpu_pipeline, cpu_bare, cpu_naive = (min(cpu[k]) for k in ("pipeline", "bare", "naive"))
    print(f"full pipeline   {pipeline:7.2f} clips/s   {cpu_pipeline:.3f} cpu-s/clip")
    print(f"bare forward    {bare:7.2f} clips/s   {cpu_bare:.3f} cpu-s/clip")
    print(f"naive loop      {naive:7.2f} clips/s   {cpu_naive:.3f} cpu-s/clip  (load one file, crop, forward alone)")
    print(f"pipeline / bare forward = {pipeline / bare:.2f} wall, {cpu_bare / cpu_pipeline:.2f} cpu (goal >= 0.9)")
    print(f"speed-up over naive     = {pipeline / naive:.2f}x wall, {cpu_naive / cpu_pipeline:.2f}x cpu (goal >= 1.5x)")


if __name__ == "__main__":
    main()
