"""Training throughput of every student on this machine (clips/s, 3 s clips, batch 16): the full
pipeline from a label store (packed audio cache, views rendered as in training) against the
same steps on batches already in memory, and wav2small's training settings against plain eager
(with the running prenorm of a streaming student too).

A tiny random teacher labels synthetic 3 s speech-like clips (clean crop + one augmented view) into
a temporary label store; nothing is downloaded. Each measurement (median step time) is repeated,
interleaved with the others, and the best repeat is printed with the load average: the machine is
shared, and the best repeat is the one least disturbed. Compare figures from one run only.

usage: python bench/train_throughput.py [--students NAME ...] [--steps 6] [--repeats 3] [--workers 0]
                                        [--explore]   # also time alternative wav2small settings
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

import torch

from wav2small.cache import build_audio_cache
from wav2small.models import create_student, list_students
from wav2small.store import LabelStore
from wav2small.testing import write_label_store
from wav2small.train import (LengthBatches, TrainConfig, ViewDataset, build_optimizer, build_student, collate_views,
                             train_step, training_loader)

BATCH = 16
SECONDS = 3.0


def clips_per_s(step, batches, steps: int) -> float:
    """Clips/s of ``steps`` calls of step(x, y) after two warm-up steps (batches is an iterator),
    from the median step time, so that a few steps slowed by other users of the machine do not count."""
    for _ in range(2):
        step(*next(batches))
    times = []
    for _ in range(steps):
        started = time.perf_counter()
        step(*next(batches))
        times.append(time.perf_counter() - started)
    return BATCH / statistics.median(times)


def endless(loader, sampler):
    epoch = 0
    while True:
        sampler.set_epoch(epoch)
        yield from loader
        epoch += 1


def package_step(model, config):
    """A training step exactly as wav2small.train runs it (``config.compile`` included)."""
    optimizer, schedule = build_optimizer(model, config)
    net = torch.compile(model) if config.compile else model
    return lambda x, y: train_step(net, x, y, optimizer, schedule, ccc_weight=config.ccc_weight, grad_clip=config.grad_clip)


def eager_step(model):
    """The plain reference: NCHW tensors, torch defaults, forward, MSE, backward, AdamW."""
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-3)

    def step(x, y):
        loss = torch.nn.functional.mse_loss(model(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    return step


def explore_step(option: str):
    """wav2small with alternative settings joined by " + ", for --explore."""
    settings = option.split(" + ")
    model = create_student("wav2small").train()
    if "channels_last" in settings:
        model = model.to(memory_format=torch.channels_last)
    net = torch.compile(model) if "torch.compile" in settings else model
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-3, fused="fused AdamW" in settings)

    def step(x, y):
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled="bf16 autocast" in settings):
            out = net(x)
        loss = torch.nn.functional.mse_loss(out.float(), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    return step


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--students", nargs="+", default=list_students())
    parser.add_argument("--steps", type=int, default=6, help="timed steps per measurement")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--workers", type=int, default=0, help="DataLoader workers of the pipeline (default: 0, train's choice on CPU)")
    parser.add_argument("--threads", type=int, help="torch threads (default: torch's choice)")
    parser.add_argument("--explore", action="store_true", help="also time alternative wav2small settings")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {os.cpu_count()} CPUs; "
          f"batch {BATCH} x {SECONDS:g} s; {args.steps} steps x {args.repeats} repeats; pipeline workers {args.workers}")

    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        clips, length = BATCH * (args.steps + 2) // 2, (SECONDS + 0.2, SECONDS + 0.2)  # two views per clip
        store = write_label_store(Path(tmp), clips, length, crop_dur=SECONDS, views=1)
        frame = LabelStore(store).read()
        labelled = time.perf_counter()
        cache = build_audio_cache(frame["params"], Path(tmp) / "cache", progress=False)
        print(f"label store: {len(frame)} views in {labelled - started:.1f} s; packed cache {cache.seconds:.0f} s of audio "
              f"built in {time.perf_counter() - labelled:.2f} s")
        dataset = ViewDataset(frame["params"].tolist(), frame[["arousal", "dominance", "valence"]].to_numpy(), cache)
        sampler = LengthBatches(dataset.lengths, BATCH, seed=0)
        in_memory = [collate_views([dataset[i] for i in batch]) for batch in sampler]

        rows = []
        for name in args.students:
            config = TrainConfig(store=str(store), out=tmp, student=name, batch_size=BATCH, workers=args.workers)
            loader = training_loader(dataset, sampler, workers=args.workers)
            pipeline, memory = [], []
            for _ in range(args.repeats):
                torch.manual_seed(0)
                pipeline.append(clips_per_s(package_step(build_student(config), config), endless(loader, sampler), args.steps))
                torch.manual_seed(0)
                memory.append(clips_per_s(package_step(build_student(config), config), iter(in_memory * 4), args.steps))
            del loader
            p, m = max(pipeline), max(memory)
            rows.append((name, p, m))
            print(f"{name:26s} pipeline {p:7.1f} clips/s   in memory {m:7.1f} clips/s   ratio {p / m:.2f}   "
                  f"(load {os.getloadavg()[0]:.1f})", flush=True)

        if "wav2small" in args.students:
            variants = {"plain eager": lambda: eager_step(create_student("wav2small").train())}
            for compile in (False, True):
                config = TrainConfig(store=str(store), out=tmp, student="wav2small", batch_size=BATCH, compile=compile)
                variants["wav2small.train" + (" --compile" if compile else "")] = lambda c=config: package_step(build_student(c), c)
            # the causal prenorm a streaming student is distilled with (per-block running statistics)
            config = TrainConfig(store=str(store), out=tmp, student="wav2small", batch_size=BATCH,
                                 student_options={"prenorm": "running"})
            variants["wav2small.train prenorm=running"] = lambda c=config: package_step(build_student(c), c)
            results = {name: [] for name in variants}
            for _ in range(args.repeats):
                for name, make in variants.items():
                    torch.manual_seed(0)
                    step = make()
                    step(*in_memory[0])  # compilation happens here
                    results[name].append(clips_per_s(step, iter(in_memory * 4), args.steps))
            base = max(results["plain eager"])
            for name, speeds in results.items():
                print(f"wav2small in memory, {name:24s} {max(speeds):6.1f} clips/s  x{max(speeds) / base:.2f}  (load {os.getloadavg()[0]:.1f})")

        if args.explore:
            options = ["plain eager", "channels_last", "fused AdamW", "bf16 autocast", "1 thread", "torch.compile",
                       "channels_last + torch.compile", "channels_last + bf16 autocast", "channels_last + torch.compile + bf16 autocast"]
            results = {o: [] for o in options}
            for _ in range(args.repeats):
                for option in options:
                    torch.manual_seed(0)
                    threads = torch.get_num_threads()
                    torch.set_num_threads(1 if "1 thread" in option else threads)
                    first = time.perf_counter()
                    step = explore_step(option)
                    step(*in_memory[0])  # compilation happens here
                    setup = time.perf_counter() - first
                    results[option].append(clips_per_s(step, iter(in_memory * 4), args.steps))
                    torch.set_num_threads(threads)
                    print(f"  {option:46s} {results[option][-1]:7.1f} clips/s (first step {setup:.1f} s, load {os.getloadavg()[0]:.1f})", flush=True)
            base = max(results["plain eager"])
            for option in options:
                best = max(results[option])
                print(f"wav2small {option:46s} {best:7.1f} clips/s  x{best / base:.2f}")


if __name__ == "__main__":
    main()
