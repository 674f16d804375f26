"""Latency-aware student search, MnasNet's method (Tan et al. 2019) scaled to this package: each
candidate from a small space of student settings is distilled briefly on a label store, exported
to int8 ONNX, timed on the target and scored by fidelity x (cost / target) ^ w.

The same measurement (:func:`measure_student`) makes the zoo table (``bench/zoo.py``).

Layout of a search folder ``OUT``::

    search.json          the settings (a search resumes only with the same ones)
    results.jsonl        one line per finished candidate (appended as each one ends)
    candidates/<key>/    each candidate's training run (train/) and export (export/)
    results.csv          every candidate with its reward; pareto.md the non-dominated ones
    best/                the best candidate's model folder, best/export/ its ONNX export
"""

from __future__ import annotations

import itertools
import json
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .contract import LABELS
from .options import SEARCH_DEFINING, SearchConfig

#: MnasNet's soft-constraint exponent: reward = fidelity * (cost / target) ** w, the same w on both
#: sides of the target (the paper's alpha = beta = -0.07); SearchConfig.exponent's default.
REWARD_EXPONENT = SearchConfig.exponent

#: What a candidate is measured by: int8 or fp32 onnxruntime latency for 5 s of audio on one
#: thread (ms), or multiply-accumulates per second of audio (millions; exact, machine-independent).
COSTS = {"int8-ms": "int8_ms", "fp32-ms": "fp32_ms", "macs": "mmacs_per_second"}

#: The card model: the reference every search measures first, under the same budget.
REFERENCE = ("wav2small", {})

#: The default space: Wav2Small's channels, mel bands, frame and hop, depth and where the pool
#: sits, and MobileNetV3-small's width and front-end. A hop longer than its frame is left out.
DEFAULT_SPACE = {
    "wav2small": {"channels": [6, 8, 10, 13], "n_mels": [20, 26], "n_fft": [64, 128], "hop": [32, 64, 128],
                  "depth": [5, 7], "pool_after": [1, 3]},
    "mobilenetv3-small": {"width": [0.25, 0.5], "n_fft": [160, 400], "hop": [160], "n_mels": [32, 64]},
}


@dataclass(frozen=True)
class Candidate:
    """A preset and the config overrides that make one student."""

    student: str
    options: tuple = ()  # sorted (name, value) pairs

    @classmethod
    def of(cls, student: str, options: dict | None = None) -> "Candidate":
        return cls(student, tuple(sorted((options or {}).items())))

    @property
    def settings(self) -> dict:
        return dict(self.options)

    @property
    def key(self) -> str:
        """A name that is also a folder name: ``wav2small`` or ``wav2small-channels8-hop64``."""
        return "-".join([self.student, *(f"{k.replace('_', '')}{v}" for k, v in self.options)])


@dataclass
class Budget:
    """The distillation every candidate gets: the same steps, batch (clips per step), peak learning
    rate and seed."""

    steps: int
    batch_size: int
    lr: float
    seed: int = 0


def reward(fidelity: float, cost: float, target: float, exponent: float = REWARD_EXPONENT) -> float:
    """MnasNet's multi-objective reward: ``fidelity * (cost / target) ** exponent``.

    With the negative exponent a candidate at half the target's cost gains 2 ** 0.07 = 5 %, one at
    twice the cost loses as much: a soft trade of fidelity against cost.

    >>> round(reward(0.6, 5.0, 10.0), 4)
    0.6298
    """
    if cost <= 0 or target <= 0:
        raise ValueError(f"cost and target must be positive, got {cost} and {target}")
    return fidelity * (cost / target) ** exponent


def expand_space(space: dict) -> list[Candidate]:
    """Every valid combination of a space ``{preset: {option: [values]}}``, in a fixed order.

    A combination whose hop is longer than its frame (samples would be skipped) or that the
    student refuses to build (e.g. the pool after a block that does not exist) is left out.
    """
    from .models import create_student

    found = []
    for student, options in space.items():
        names = sorted(options)
        for values in itertools.product(*(options[n] for n in names)):
            settings = dict(zip(names, values))
            if settings.get("hop", 0) > settings.get("n_fft", float("inf")):
                continue
            try:
                create_student(student, **settings)
            except ValueError as error:
                if "unknown student" in str(error) or "no setting" in str(error):
                    raise
                continue
            found.append(Candidate.of(student, settings))
    return found


def search_order(space: dict, *, seed: int = 0, reference: Candidate | None = Candidate.of(*REFERENCE)) -> list[Candidate]:
    """The reference first, then the space's candidates in a seeded random order (the same for
    the same space and seed, so a resumed search continues the same list)."""
    pool = [c for c in expand_space(space) if c != reference]
    order = [pool[i] for i in np.random.default_rng(seed).permutation(len(pool))]
    return ([reference] if reference is not None else []) + order


# measuring one student


def onnx_latency_ms(path, *, seconds: float = 5.0, threads: int = 1, repeats: int = 20) -> dict:
    """Latency of one ONNX model on ``seconds`` of speech-like audio at batch 1 with ``threads``
    onnxruntime threads: best and median of ``repeats`` runs after 3 warm-up runs, in ms. The best
    is the steadier figure on a shared machine."""
    from .runners import OnnxRunner
    from .testing import synth_speech

    runner = OnnxRunner(path, threads=threads)
    x = synth_speech(seconds, 0)[None]
    for _ in range(3):
        runner(x)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        runner(x)
        times.append(1000 * (time.perf_counter() - start))
    return {"min_ms": round(min(times), 3), "median_ms": round(float(np.median(times)), 3)}


def held_out_fidelity(model_path, test_store, *, threads: int | None = None) -> dict:
    """CCC of a model's outputs with the teacher's on the clean crops (view 0) of ``test_store``
    (a label store of audio no student trained on): per dimension and ``mean``."""
    from .metrics import concordance_cc
    from .runners import OnnxRunner, run_clips
    from .store import LabelStore
    from .views import render_view

    frame = LabelStore(test_store).read()
    frame = frame[frame["view"] == 0]
    if len(frame) < 2:
        raise ValueError(f"{test_store}: fewer than 2 clean crops to measure fidelity on")
    clips = [render_view(p) for p in frame["params"]]
    predictions = run_clips(OnnxRunner(model_path, threads=threads), clips)
    ccc = concordance_cc(frame[list(LABELS)].to_numpy(), predictions)
    return {**{k: round(float(v), 4) for k, v in zip(LABELS, ccc)}, "mean": round(float(np.mean(ccc)), 4), "clips": len(clips)}


def measure_student(candidate: Candidate, *, store, test_store, folder, budget: Budget, threads: int | None = None,
                    latency_threads: int = 1, repeats: int = 20, progress: bool = False) -> dict:
    """Distil ``candidate`` with ``budget`` on ``store``, export it to fp32 and int8 ONNX
    (calibrated on the store), time both on 5 s of audio and measure its fidelity to the teacher
    on ``test_store``; returns one row of numbers. ``folder`` receives train/ and export/; a
    killed measurement resumes its training where the checkpoint left it.

    The int8 model is always written and its agreement with fp32 recorded (``int8_pearson_min``,
    ``int8_ccc_min``; ``int8_check`` says whether it meets the export's default bar).
    """
    from .export import ParityError, export_onnx
    from .options import TrainConfig
    from .train import train

    folder = Path(folder)
    started = time.perf_counter()
    config = TrainConfig(store=str(store), out=str(folder / "train"), student=candidate.student,
                         student_options=candidate.settings, steps=budget.steps, batch_size=budget.batch_size,
                         lr=budget.lr, seed=budget.seed, threads=threads, progress=progress)
    summary = train(config)
    trained = time.perf_counter()
    model_dir = folder / "train" / ("best" if (folder / "train" / "best").exists() else "last")
    export_dir = folder / "export"
    try:
        report = export_onnx(model_dir, export_dir, int8=True, calibration=store, clip_seconds=2.0, max_clips=128,
                             min_pearson=-1.0, min_ccc=-1.0, checks=((1, 2.0), (2, 5.0)))
    except ParityError as error:  # fp32 against torch: a broken export, recorded as such
        raise RuntimeError(f"{candidate.key}: {error}") from error
    prints = json.loads((export_dir / "footprint.json").read_text())
    q = report["int8"]
    row = {
        "key": candidate.key, "student": candidate.student, "options": candidate.settings,
        "parameters": report["model"]["parameters"], "state_values": report["model"]["state_values"],
        "mmacs_per_second": round(prints["model.int8.onnx"]["macs_per_second"] / 1e6, 3),
        "int8_bytes": prints["model.int8.onnx"]["file_bytes"], "fp32_bytes": prints["model.onnx"]["file_bytes"],
        "peak_activation_kib": round(prints["model.int8.onnx"]["peak_activation_bytes"]["5s"] / 1024, 1),
        "int8_pearson_min": min(q["pearson"].values()), "int8_ccc_min": min(q["ccc"].values()),
        "int8_check": all(q["pearson"][k] >= 0.99 and q["ccc"][k] >= 0.98 for k in LABELS),
        "train_steps": summary["steps"], "valid_mean": summary.get("best_valid_mean"),
    }
    for precision, name in (("fp32", "model.onnx"), ("int8", "model.int8.onnx")):
        timing = onnx_latency_ms(export_dir / name, threads=latency_threads, repeats=repeats)
        row[f"{precision}_ms"], row[f"{precision}_ms_median"] = timing["min_ms"], timing["median_ms"]
        fidelity = held_out_fidelity(export_dir / name, test_store)
        row[f"{precision}_fidelity"] = fidelity["mean"]
        row[f"{precision}_ccc"] = {k: fidelity[k] for k in LABELS}
        row["test_clips"] = fidelity["clips"]
    row["train_seconds"] = round(trained - started, 1)
    row["seconds"] = round(time.perf_counter() - started, 1)
    return row


# the search


def _append_line(path: Path, record: dict) -> None:
    """Append one JSON line and make it durable: a killed search loses no finished candidate."""
    with open(path, "a") as f:
        f.write(json.dumps(record, default=str) + "\n")
        f.flush()
        os.fsync(f.fileno())


def read_results(out) -> list[dict]:
    """The finished candidates of a search folder (a torn last line, from a kill, is ignored)."""
    path = Path(out) / "results.jsonl"
    rows = []
    if path.exists():
        for line in path.read_text().splitlines():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                continue
    return rows


def score(rows: list[dict], *, cost: str, target: float | None, exponent: float = REWARD_EXPONENT):
    """A DataFrame of the measured rows with ``cost``, ``reward`` (int8 fidelity x (cost /
    target) ^ exponent) and ``pareto`` (no other row has higher fidelity at a lower or equal cost,
    or equal fidelity at a lower cost), best reward first. ``target`` None: the reference's cost."""
    import pandas as pd

    frame = pd.DataFrame([r for r in rows if "error" not in r])
    if frame.empty:
        return frame
    frame["cost"] = frame[COSTS[cost]].astype(float)
    if target is None:
        reference = frame[frame["key"] == Candidate.of(*REFERENCE).key]
        target = float(reference["cost"].iloc[0]) if len(reference) else float(frame["cost"].iloc[0])
    frame["target"] = target
    frame["reward"] = [reward(f, c, target, exponent) for f, c in zip(frame["int8_fidelity"], frame["cost"])]
    fidelity, costs = frame["int8_fidelity"].to_numpy(), frame["cost"].to_numpy()
    frame["pareto"] = [not np.any(((fidelity > f) & (costs <= c)) | ((fidelity >= f) & (costs < c)))
                       for f, c in zip(fidelity, costs)]
    return frame.sort_values("reward", ascending=False).reset_index(drop=True)


def pareto_markdown(frame, *, cost: str, exponent: float = REWARD_EXPONENT, title: str) -> str:
    """The non-dominated candidates as a Markdown table, cheapest first."""
    front = frame[frame["pareto"]].sort_values("cost")
    lines = [f"# {title}", "", f"Reward = int8 fidelity x (cost / {frame['target'].iloc[0]:g}) ^ {exponent:g} "
             f"(cost: {cost}); fidelity = held-out mean CCC with the teacher.", "",
             "| candidate | params | M MAC/s | int8 bytes | int8 ms | fidelity int8 | fidelity fp32 | reward |",
             "|---|---|---|---|---|---|---|---|"]
    for _, r in front.iterrows():
        lines.append(f"| {r['key']} | {r['parameters']:,} | {r['mmacs_per_second']:.1f} | {r['int8_bytes']:,} | "
                     f"{r['int8_ms']:.2f} | {r['int8_fidelity']:.3f} | {r['fp32_fidelity']:.3f} | {r['reward']:.4f} |")
    return "\n".join(lines) + "\n"


def search_budget(config: SearchConfig) -> Budget:
    """The distillation budget every candidate of ``config`` gets."""
    return Budget(steps=config.steps, batch_size=config.batch_size, lr=config.lr, seed=config.seed)


def search(config: SearchConfig):
    """Run (or resume) the search ``config`` describes into ``config.out``: measure the first
    ``config.candidates`` of :func:`search_order` not measured yet, then write results.csv,
    pareto.md and best/.

    A candidate that fails is recorded with its error and the search goes on. Returns the scored
    DataFrame (see :func:`score`).

    Example (it needs files or a download, so it is not run as a doctest)::

        frame = search(SearchConfig("exp/w2s/labels", test_store="exp/w2s/labels_test", out="exp/search"))
        frame[["key", "int8_fidelity", "mmacs_per_second", "reward"]].head()
    """
    from .atomic import write_text
    from .store import is_label_store

    if config.cost not in COSTS:
        raise ValueError(f"cost must be one of {sorted(COSTS)}, got {config.cost!r}")
    for name, path in (("store", config.store), ("test store", config.test_store)):
        if not is_label_store(path):
            raise ValueError(f"{path}: the {name} is not a label store (no metadata.json); make one with `wav2small label`")
    space = DEFAULT_SPACE if config.space is None else config.space
    order = search_order(space, seed=config.seed)[:config.candidates]  # a bad space fails here, before any file is written
    out = Path(config.out)
    out.mkdir(parents=True, exist_ok=True)
    recorded = {name: getattr(config, name) for name in SEARCH_DEFINING} | {"space": space}
    settings_path = out / "search.json"
    if settings_path.exists():
        old = json.loads(settings_path.read_text())
        changed = [k for k in recorded if json.loads(json.dumps(recorded[k])) != old.get(k)]
        if changed:
            raise ValueError(f"{out}: holds a search with other settings ({', '.join(changed)}); use another "
                             "output folder, or the same settings to resume")
    else:
        write_text(settings_path, json.dumps(recorded, indent=2) + "\n")

    budget = search_budget(config)
    done = {r["key"] for r in read_results(out)}
    say = print if config.progress else (lambda *a, **k: None)
    say(f"search: {len(order)} candidates ({len(done & {c.key for c in order})} measured before), budget "
        f"{budget.steps} steps x {budget.batch_size} clips each, cost {config.cost}", flush=True)
    for i, candidate in enumerate(order, 1):
        if candidate.key in done:
            continue
        say(f"[{i}/{len(order)}] {candidate.key}: distilling, exporting, timing ...", flush=True)
        try:
            row = measure_student(candidate, store=config.store, test_store=config.test_store,
                                  folder=out / "candidates" / candidate.key, budget=budget, threads=config.threads,
                                  latency_threads=config.latency_threads, repeats=config.repeats)
        except (OSError, ValueError, RuntimeError) as error:
            _append_line(out / "results.jsonl", {"key": candidate.key, "error": f"{type(error).__name__}: {error}"})
            say(f"[{i}/{len(order)}] {candidate.key}: FAILED ({error}); recorded, going on", flush=True)
            continue
        _append_line(out / "results.jsonl", row)
        frame = score(read_results(out), cost=config.cost, target=config.target, exponent=config.exponent)
        mine = frame[frame["key"] == candidate.key].iloc[0]
        say(f"[{i}/{len(order)}] {candidate.key}: fidelity {row['int8_fidelity']:.3f} (int8), {row['int8_ms']:.2f} ms int8, "
            f"{row['mmacs_per_second']:.1f} M MAC/s, reward {mine['reward']:.4f}; best so far {frame['key'].iloc[0]} "
            f"({frame['reward'].iloc[0]:.4f}); {row['seconds']:.0f} s", flush=True)
    return finish_search(config)


def finish_search(config: SearchConfig):
    """Write results.csv, pareto.md and best/ (a copy of the best candidate's model folder, with
    its export in best/export/) from the finished candidates of ``config.out``; returns the scored
    DataFrame."""
    from .atomic import atomic_directory, write_text

    out = Path(config.out)
    frame = score(read_results(out), cost=config.cost, target=config.target, exponent=config.exponent)
    if frame.empty:
        return frame
    flat = frame.drop(columns=["fp32_ccc", "int8_ccc"]).assign(options=[json.dumps(o) for o in frame["options"]])
    write_text(out / "results.csv", flat.to_csv(index=False))
    write_text(out / "pareto.md", pareto_markdown(frame, cost=config.cost, exponent=config.exponent,
                                                  title="Search: Pareto front"))
    best = out / "candidates" / frame["key"].iloc[0]
    model_dir = best / "train" / ("best" if (best / "train" / "best").exists() else "last")
    with atomic_directory(out / "best") as tmp:
        shutil.copytree(model_dir, tmp, dirs_exist_ok=True)
        shutil.copytree(best / "export", Path(tmp) / "export")
    return frame
