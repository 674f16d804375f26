"""Distillation methods measured: the card student (wav2small) learns from two fitted smoke teachers
of different shapes (a tiny Dawn-format and a tiny Odyssey-format teacher, each fitted to the demo
corpus's proxy ratings) under the same step budget, three seeds per method. Reported: held-out
fidelity, the CCC of the student against the teachers on the clean crops of the demo corpus's Test1
files, which neither the teachers nor the student were fitted on (against the ensemble mean and
against each member), mean and spread over the seeds.

Methods (one row each; the views of a store are labelled once and reused by every row and seed):
  mean target           the ensemble's combined output (the default), views K = 1, 4, 8
  + MixUp               K = 4 with MixUp views (mixup_prob 0.5, labelled on the mixture)
  gain-free             K = 4 without the random gain (gain_db 0,0: the Odyssey finding)
  per-member            K = 4, one loss term per teacher (--member-weight dawn=1 --member-weight odyssey=1)
  tolerant/tough        K = 4, half of each loss term on the clean crop's target (clean_target_weight 0.5)

    python bench/distill_methods.py --work /tmp/methods      # makes the demo corpus and fits the teachers
    python bench/distill_methods.py --work /tmp/methods --demo exp/demo --teachers exp/teachers

Everything is kept in --work (demo corpus, teachers, stores, runs): a second call reuses what is
there and trains only what is missing; processes sharing --work can split the methods (--no-table),
and --table-only writes the table of the runs finished so far. Writes bench/results/distill_methods.md (and .json).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from wav2small import Student
from wav2small.contract import LABELS
from wav2small.labels import label_audio
from wav2small.metrics import concordance_cc
from wav2small.options import TrainConfig, ViewSettings
from wav2small.store import LabelStore
from wav2small.train import train
from wav2small.views import render_view

MEMBERS = ("dawn", "odyssey")
#: store name -> (augmented views per clip, view settings)
STORES = {
    "k1": (1, ViewSettings()),
    "k4": (4, ViewSettings()),
    "k8": (8, ViewSettings()),
    "k4-mixup": (4, ViewSettings(mixup_prob=0.5)),
    "k4-gain-free": (4, ViewSettings(gain_db=(0.0, 0.0))),
}
#: method -> (store, TrainConfig options)
METHODS = {
    "mean target, K=1": ("k1", {}),
    "mean target, K=4": ("k4", {}),
    "per-member, K=4": ("k4", {"member_weights": {"dawn": 1.0, "odyssey": 1.0}}),
    "tolerant/tough, K=4": ("k4", {"clean_target_weight": 0.5}),
    "mean target, K=4 + MixUp": ("k4-mixup", {}),
    "mean target, K=8": ("k8", {}),
    "mean target, K=4 gain-free": ("k4-gain-free", {}),
}


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def wav2small_command(*args) -> None:
    subprocess.run([sys.executable, "-m", "wav2small", *map(str, args)], check=True)


def split_files(demo: Path, split: str) -> list[str]:
    table = pd.read_csv(demo / "Labels" / "labels_consensus.csv")
    return sorted(str(demo / "Audios" / name) for name in table.loc[table["Split_Set"] == split, "FileName"])


def prepare(args) -> tuple[Path, Path]:
    """The demo corpus and the two fitted teachers (made here unless given)."""
    demo = Path(args.demo) if args.demo else args.work / "demo"
    if not (demo / "Labels" / "labels_consensus.csv").exists():
        wav2small_command("demo-corpus", demo, "--clips", args.clips)
    teachers = Path(args.teachers) if args.teachers else args.work / "teachers"
    if not all((teachers / kind / "fit.json").exists() for kind in MEMBERS):
        wav2small_command("make-tiny-teacher", teachers, "--kind", "both", "--fit", demo)
    return demo, teachers


def label(name: str, files, teachers: Path, work: Path, *, views: int, settings: ViewSettings, crop_dur: float) -> Path:
    store = work / "stores" / name
    manifest = work / "stores" / f"{name}.csv"
    manifest.parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame({"file": files}).to_csv(manifest, index=False)
    label_audio(manifest, [teachers / kind for kind in MEMBERS], store, crop_dur=crop_dur, views=views, view_settings=settings,
                batch_size=32, workers=1, progress=False)
    return store


@torch.no_grad()
def fidelity(model_dir: Path, test: pd.DataFrame) -> dict:
    """CCC (mean of the 3 dimensions) of a student against the ensemble and each member on the test crops."""
    model = Student.from_pretrained(model_dir).eval()
    predictions = np.zeros((len(test), 3), np.float32)
    audio = [render_view(p) for p in test["params"]]
    for length in sorted({len(x) for x in audio}):
        rows = [i for i, x in enumerate(audio) if len(x) == length]
        predictions[rows] = model(torch.from_numpy(np.stack([audio[i] for i in rows]))).numpy()
    scores = {"ensemble": float(np.mean(concordance_cc(test[list(LABELS)].to_numpy(), predictions)))}
    for member in MEMBERS:
        scores[member] = float(np.mean(concordance_cc(test[[f"{member}.{k}" for k in LABELS]].to_numpy(), predictions)))
    return scores


def run_method(method: str, store: Path, options: dict, seed: int, args, test: pd.DataFrame) -> dict:
    """Train one run (or find it done) and score it; the result is kept in the run folder's fidelity.json."""
    name = method.replace(" ", "_").replace(",", "").replace("/", "-").replace("+", "plus")
    out = args.work / "runs" / name / f"steps{args.steps}-seed{seed}"
    if (out / "fidelity.json").exists():
        return json.loads((out / "fidelity.json").read_text())
    if args.table_only:
        return None
    config = TrainConfig(store=str(store), out=str(out), steps=args.steps, batch_size=16, lr=args.lr, valid_fraction=0.0,
                         seed=seed, workers=0, threads=args.threads, progress=False, cache_dir=str(args.work / "audio-cache"),
                         **options)
    started = time.perf_counter()
    train(config)
    result = {"method": method, "seed": seed, "steps": args.steps, "seconds": time.perf_counter() - started, "load": os.getloadavg()[0],
              **fidelity(out / "last", test)}
    (out / "fidelity.json").write_text(json.dumps(result, indent=1) + "\n")
    print(f"{method:28s} seed {seed}: " + ", ".join(f"{k} {result[k]:.3f}" for k in ("ensemble", *MEMBERS))
          + f" ({result['seconds']:.0f} s)", flush=True)
    return result


def spread(values) -> str:
    return f"{statistics.mean(values):.3f} ± {statistics.stdev(values):.3f}" if len(values) > 1 else f"{values[0]:.3f}"


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", type=Path, required=True, help="folder for the corpus, teachers, stores and runs (reused)")
    parser.add_argument("--demo", help="an existing demo corpus (default: made in --work)")
    parser.add_argument("--teachers", help="a folder with fitted teachers dawn/ and odyssey/ (default: fitted in --work)")
    parser.add_argument("--clips", type=int, default=480, help="clips of a demo corpus made here (default: %(default)s)")
    parser.add_argument("--steps", type=int, default=300, help="training steps of every run (default: %(default)s)")
    parser.add_argument("--lr", type=float, default=3e-3, help="peak learning rate (default: %(default)s)")
    parser.add_argument("--crop-dur", type=float, default=2.0, help="seconds per labelled crop (default: %(default)s)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="training seeds (default: %(default)s)")
    parser.add_argument("--methods", nargs="+", default=list(METHODS), help="methods to run (default: all)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads per run (default: %(default)s)")
    parser.add_argument("--results", type=Path, default=Path(__file__).parent / "results" / "distill_methods.md")
    parser.add_argument("--no-table", action="store_true", help="train and score only (e.g. a second process sharing --work)")
    parser.add_argument("--table-only", action="store_true", help="no training: the table of the runs finished so far")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    args.work.mkdir(parents=True, exist_ok=True)

    demo, teachers = prepare(args)
    train_files, test_files = split_files(demo, "Train"), split_files(demo, "Test1")
    test_store = label("test", test_files, teachers, args.work, views=0, settings=ViewSettings(), crop_dur=args.crop_dur)
    test = LabelStore(test_store).read()
    stores = {}
    for method in args.methods:
        name = METHODS[method][0]
        if name not in stores:
            views, settings = STORES[name]
            stores[name] = label(name, train_files, teachers, args.work, views=views, settings=settings, crop_dur=args.crop_dur)

    results = [run_method(method, stores[METHODS[method][0]], METHODS[method][1], seed, args, test)
               for seed in args.seeds for method in args.methods]  # every method's first seed first: a cut run compares all
    results = [r for r in results if r is not None]
    if args.no_table:
        return

    teacher_agreement = float(np.mean(concordance_cc(test[[f"dawn.{k}" for k in LABELS]].to_numpy(),
                                                    test[[f"odyssey.{k}" for k in LABELS]].to_numpy())))
    fits = {kind: json.loads((teachers / kind / "fit.json").read_text()) for kind in MEMBERS}
    rows = []
    for method in args.methods:
        found = [r for r in results if r["method"] == method]
        if found:
            rows.append((method, len(found), *(spread([r[k] for r in found]) for k in ("ensemble", *MEMBERS)),
                         statistics.mean(r["seconds"] for r in found)))
    store_rows = {name: len(LabelStore(path).read(columns=["view"])) for name, path in stores.items()}
    run_loads = [r["load"] for r in results if "load" in r]
    loads = f"{min(run_loads):.1f}-{max(run_loads):.1f}" if run_loads else "not recorded"
    lines = [
        "# Distillation methods on the demo corpus (bench/distill_methods.py)",
        "",
        f"CPU: {cpu_model()}, {os.cpu_count()} cores, torch threads {args.threads}; load average at the end of the runs "
        f"{loads} (a shared machine, runs side by side: the times are indicative only). "
        f"Training time of the runs below: {sum(r['seconds'] for r in results) / 60:.0f} min in all.",
        "",
        f"Budget: the card student `wav2small`, {args.steps} steps of 16 crops (lr {args.lr:g}, warm-up 5 %, cosine), "
        f"crops of {args.crop_dur:g} s of the {len(train_files)} Train files of the demo corpus, no validation (last/ is scored); "
        f"seeds {', '.join(map(str, args.seeds))}. Store rows (crops x (1 + K)): "
        + ", ".join(f"{name} {count}" for name, count in store_rows.items()) + ".",
        "",
        "Teachers: a tiny Dawn-format and a tiny Odyssey-format teacher fitted to the demo corpus's proxy ratings "
        f"(held-out CCC vs the ratings: dawn {fits['dawn']['held_out_ccc']['mean']:.2f}, odyssey {fits['odyssey']['held_out_ccc']['mean']:.2f}); "
        f"CCC of one teacher against the other on the test crops: {teacher_agreement:.2f}. Smoke teachers, not emotion models.",
        "",
        f"Held-out fidelity: mean CCC (arousal, dominance, valence) of the student against the teachers on the {len(test)} clean crops "
        f"of the {len(test_files)} Test1 files; mean ± standard deviation over the seeds (each run: "
        f"{args.results.with_suffix('.json').name}).",
        "",
        "| method | runs | vs ensemble | vs dawn | vs odyssey | s per run |",
        "|---|---|---|---|---|---|",
        *(f"| {m} | {n} | {a} | {d} | {o} | {s:.0f} |" for m, n, a, d, o, s in rows),
        "",
    ]
    args.results.parent.mkdir(parents=True, exist_ok=True)
    args.results.write_text("\n".join(lines))
    args.results.with_suffix(".json").write_text(json.dumps(results, indent=1) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
