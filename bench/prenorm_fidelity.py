"""Held-out fidelity of a running-prenorm student next to the default (per-utterance prenorm) student,
both distilled the same way from the same label store, and what streaming does to each.

    python bench/prenorm_fidelity.py --work exp/prenorm-fidelity --seeds 0 1 2

Runs the README's main job on the demo corpus (espeak-ng voices, a tiny Dawn-shaped teacher
fitted to the corpus's proxy ratings with `make-tiny-teacher --fit`, 2 s crops with one augmented
view, --steps 600 by default; bench/results holds a run with --steps 300) once per seed and
prenorm, then scores on the held-out Test1 crops (never seen in training) the CCC with the
teacher of:

- each student offline (whole 2 s clip, as `wav2small evaluate`),
- each student streamed (`wav2small.Stream`, the estimate at the end of the clip): the running
  student streams exactly like its offline self; the default one is streamed with a running
  prenorm it was not trained with.

Steps already done in --work are skipped. Writes results (Markdown and JSON) to --out.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import torch

from wav2small import Stream, Student
from wav2small.corpora import label_store_corpus
from wav2small.evaluate import evaluate

PRENORMS = ("utterance", "running")


def prepare(work: Path, steps: int, seeds):
    """The main job's stages 0-2 in ``work`` (relative paths), once per seed and prenorm; each step
    skipped when done (a finished training run says so and stops)."""

    def wav2small(*args):
        subprocess.run([sys.executable, "-m", "wav2small", *map(str, args)], check=True, cwd=work)

    work.mkdir(parents=True, exist_ok=True)
    if not (work / "demo").exists():
        wav2small("demo-corpus", "demo", "--clips", 480)
    if not (work / "teacher").exists():
        wav2small("make-tiny-teacher", "teacher", "--kind", "dawn", "--fit", "demo")
    if not (work / "data" / "test.csv").exists():
        wav2small("prepare", "demo", "--splits", "Train", "--test-split", "Test1", "--out", "data")
    for split, store, views in (("train", "labels", 1), ("test", "labels_test", 0)):
        if not (work / store / "metadata.json").exists():
            wav2small("label", f"data/{split}.csv", "--teacher", "teacher", "--out", store, "--crop-dur", 2, "--views", views,
                      "--quiet")
    for seed in seeds:
        for prenorm in PRENORMS:
            run = f"train_{prenorm}_{seed}"
            if not _finished(work / run, steps):
                wav2small("train", "labels", "--out", run, "--student-option", f"prenorm={prenorm}", "--steps", steps,
                          "--seed", seed, "--threads", 1, "--quiet")


def _finished(run: Path, steps: int) -> bool:
    """Whether ``run`` holds a best model and logged its last step."""
    log = run / "log.csv"
    return (run / "best").is_dir() and log.exists() and log.read_text().strip().splitlines()[-1].split(",")[0] == str(steps)


class Streamed(torch.nn.Module):
    """A student fed through :class:`wav2small.Stream` in 512-sample chunks; the estimate at the end."""

    def __init__(self, student):
        super().__init__()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the default student is streamed with a running prenorm on purpose
            self.stream = Stream(student, hop=1e6)

    def forward(self, batch):
        rows = []
        for x in batch.numpy():
            self.stream.reset()
            for start in range(0, len(x), 512):
                self.stream.feed(x[start : start + 512])
            rows.append(self.stream.flush()[1:])
        return torch.tensor(rows)


def score(work: Path, seeds) -> dict:
    corpus = label_store_corpus(work / "labels_test", allow_outside_paths=True)  # a store this script labelled
    results = {}
    for seed in seeds:
        models = {}
        for prenorm in PRENORMS:
            student = Student.from_pretrained(work / f"train_{prenorm}_{seed}" / "best")
            models[f"{prenorm} offline"] = student
            models[f"{prenorm} streamed"] = Streamed(student)
        ccc = evaluate(corpus, models, n_bootstrap=0).metric("ccc")
        results[seed] = {name: {key: float(ccc.loc[name, key]) for key in ccc.columns} for name in models}
    return results


def markdown(results: dict, info: dict) -> str:
    names = list(next(iter(results.values())))
    lines = [f"# Running vs per-utterance prenorm: held-out CCC with the teacher ({info['clips']} Test1 crops of 2 s)", "",
             f"{info['cpu']} (load average {info['load_average_at_end']:.1f} at the end); {info['steps']} steps per run; seeds {', '.join(map(str, results))}; mean (sd) over seeds.",
             "Teacher: tiny Dawn-shaped, fitted to the demo corpus's proxy ratings (its held-out CCC with them: "
             + _ccc_text(info["teacher_held_out_ccc"]) + ").", "",
             "| student | arousal | dominance | valence | mean |", "|---|---|---|---|---|"]
    for name in names:
        cells = []
        for key in ("arousal", "dominance", "valence", "mean"):
            values = np.array([results[seed][name][key] for seed in results])
            cells.append(f"{values.mean():.3f} ({values.std():.3f})")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    lines += ["", "Per seed (mean CCC): " + "; ".join(
        f"seed {seed}: " + ", ".join(f"{name} {results[seed][name]['mean']:.3f}" for name in names) for seed in results)]
    return "\n".join(lines) + "\n"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", default="exp/prenorm-fidelity", help="working folder (kept; steps done are skipped)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--steps", type=int, default=600)
    parser.add_argument("--out", default="bench/results/prenorm_fidelity")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    work = Path(args.work)
    prepare(work, args.steps, args.seeds)
    results = score(work, args.seeds)
    fit = json.loads((work / "teacher" / "fit.json").read_text())
    info = {"cpu": _cpu(), "steps": args.steps, "clips": len(label_store_corpus(work / "labels_test", allow_outside_paths=True)),
            "teacher_held_out_ccc": fit["held_out_ccc"], "load_average_at_end": os.getloadavg()[1]}
    text = markdown(results, info)
    print(text)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out + ".md").write_text(text)
    Path(args.out + ".json").write_text(json.dumps({"info": info, "ccc": results}, indent=2) + "\n")


def _ccc_text(ccc) -> str:
    if ccc is None:
        return "not measured"
    return ", ".join(f"{key} {value:.3f}" for key, value in ccc.items())


def _cpu() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.machine()


if __name__ == "__main__":
    main()
