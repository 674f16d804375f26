"""Score models on a corpus: CCC, Pearson and MAE per dimension with bootstrap intervals, breakdowns
by gender and speaker, and a report (JSON, Markdown, per-clip CSV, PNG plots).
"""

from __future__ import annotations

import math
import os
import platform
import sys
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ._version import __version__
from .atomic import atomic_path, write_json, write_text
from .audio import AudioError
from .contract import LABELS, MIN_SAMPLES
from .corpora import Corpus
from .metrics import concordance_cc, mean_absolute_error, pearson_cc
from .runners import EqualLengthBatcher, load_model

MISSING = "file not found"
METRICS = {"ccc": concordance_cc, "pearson": pearson_cc, "mae": mean_absolute_error}
COLUMNS = (*LABELS, "mean")


def bootstrap_intervals(truth, prediction, *, metrics=None, n_resamples: int = 1000, seed: int = 0, level: float = 0.95) -> dict:
    """Percentile bootstrap intervals of each metric per column and of its mean over columns.

    Clips (rows of the (N, K) arrays) are resampled with replacement ``n_resamples`` times from a
    generator seeded with ``seed``, so the same seed and N draw the same resamples for every
    model. ``metrics`` maps names to functions like :func:`concordance_cc` (default: CCC,
    Pearson, MAE). Returns ``{name: (K + 1, 2) array of [low, high]}``; the last row is the
    interval of the column mean.
    """
    metrics = METRICS if metrics is None else metrics
    truth, prediction = np.asarray(truth, np.float64), np.asarray(prediction, np.float64)
    n, k = truth.shape
    rng = np.random.default_rng(seed)
    stats = {name: np.full((n_resamples, k), np.nan) for name in metrics}
    # Resample in chunks of rows of an index matrix so memory stays near 16 MB per side.
    chunk = max(1, min(n_resamples, 2_000_000 // max(1, n * k)))
    for first in range(0, n_resamples, chunk):
        index = rng.integers(0, n, size=(min(chunk, n_resamples - first), n))  # (R, N)
        r = len(index)
        # (R, N, K) -> (R * K, N), passed transposed: (N, R * K) with each column (one resample of
        # one dimension) contiguous in memory, which the column-wise metrics read fastest.
        t = truth[index].transpose(0, 2, 1).reshape(r * k, n).T
        p = prediction[index].transpose(0, 2, 1).reshape(r * k, n).T
        for name, metric in metrics.items():
            stats[name][first : first + r] = np.asarray(metric(t, p)).reshape(r, k)
    tail = 50 * (1 - level)
    bounds = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns (constant data) give NaN bounds
        for name, values in stats.items():
            values = np.column_stack([values, values.mean(axis=1)])  # (R, K + 1)
            bounds[name] = np.nanpercentile(values, [tail, 100 - tail], axis=0).T
    return bounds


def score(truth, prediction, *, n_resamples: int = 1000, seed: int = 0, level: float = 0.95) -> dict:
    """CCC, Pearson and MAE of (N, 3) truth and prediction, per dimension and their mean.

    Returns ``{metric: {dimension or "mean": {"value", "low", "high"}}}``; with ``n_resamples=0``
    the bounds are None.
    """
    truth, prediction = np.asarray(truth, np.float64), np.asarray(prediction, np.float64)
    intervals = n_resamples > 0 and len(truth) > 0
    bounds = bootstrap_intervals(truth, prediction, n_resamples=n_resamples, seed=seed, level=level) if intervals else {}
    result = {}
    for name, metric in METRICS.items():
        values = np.asarray(metric(truth, prediction), np.float64)
        values = np.append(values, values.mean())
        low_high = bounds.get(name, np.full((len(values), 2), np.nan))
        result[name] = {
            column: {"value": _number(v), "low": _number(lo) if intervals else None, "high": _number(hi) if intervals else None}
            for column, v, (lo, hi) in zip(COLUMNS, values, low_high)
        }
    return result


def _number(x):
    x = float(x)
    return None if math.isnan(x) else x


def _model_name(spec) -> str:
    if isinstance(spec, (str, Path)):
        path = Path(spec)
        # A run folder's best/ or an export's model.onnx says little alone: keep the parent too.
        return "/".join(path.parts[-2:]) if path.exists() else str(spec)
    return str(getattr(spec, "name", None) or type(spec).__name__)


def _named_models(models) -> dict:
    if isinstance(models, dict):
        return dict(models)
    if isinstance(models, (str, Path)) or not isinstance(models, (list, tuple)):
        models = [models]
    named = {}
    for spec in models:
        name = base = _model_name(spec)
        count = 1
        while name in named:
            count += 1
            name = f"{base}#{count}"
        named[name] = spec
    return named


def predict_corpus(corpus: Corpus, runners: dict, *, batch_size: int = 16, progress: bool = False):
    """Run every runner on every clip, reading each clip once.

    Returns ``(predictions, errors)``: ``{name: (N, 3) array}`` with NaN rows for clips that were
    not scored, and ``{row: reason}`` for those clips (file missing, unreadable, too short).
    """
    from .progress import progress_bar

    batchers = {name: EqualLengthBatcher(p, batch_size) for name, p in runners.items()}
    shortest = {name: int(getattr(p, "min_samples", MIN_SAMPLES)) for name, p in runners.items()}
    errors = {}
    for i, row in enumerate(progress_bar(corpus.clips.to_dict("records"), desc="evaluate", unit="clip", disable=not progress)):
        if not os.path.lexists(row["file"]):  # a symlink loop is there (and unreadable, as the reader says)
            errors[i] = MISSING
            continue
        try:
            clip = corpus.read(row)
        except (AudioError, OSError, ValueError) as error:
            errors[i] = getattr(error, "problem", None) or str(error)
            continue
        too_short = [f"{name} needs {m}" for name, m in shortest.items() if len(clip) < m]
        if too_short:
            errors[i] = f"too short: {len(clip)} samples ({', '.join(too_short)})"
            continue
        for batcher in batchers.values():
            batcher.add(i, clip)
    predictions = {}
    for name, batcher in batchers.items():
        batcher.flush()
        out = np.full((len(corpus), len(LABELS)), np.nan)
        for i, row in batcher.results.items():
            out[i] = row
        predictions[name] = out
    return predictions, errors


def _describe(runner) -> dict:
    """What a report records about a model: a teacher's ids and revisions, a student's config and
    size, an ONNX file's path."""
    module = getattr(runner, "module", None)
    if hasattr(module, "describe"):
        return module.describe()
    if hasattr(module, "config_dict"):
        return {**module.config_dict(), "parameters": module.num_parameters()}
    if hasattr(runner, "path"):
        return {"onnx": str(runner.path)}
    return {"class": type(module or runner).__name__}


def _versions() -> dict:
    versions = {"wav2small": __version__, "python": platform.python_version(), "numpy": np.__version__, "pandas": pd.__version__}
    for module in ("torch", "onnxruntime"):
        if module in sys.modules:
            versions[module] = sys.modules[module].__version__
    return versions


def _group_scores(clips, truth, predictions, column, *, min_size, n_resamples, seed, level):
    """Scores per value of ``clips[column]`` (groups with fewer than ``min_size`` clips are skipped)."""
    groups = {}
    for value, members in clips.groupby(column, sort=True).indices.items():
        if len(members) < min_size:
            continue
        groups[str(value)] = {
            "n": len(members),
            "models": {name: score(truth[members], p[members], n_resamples=n_resamples, seed=seed, level=level)
                       for name, p in predictions.items()},
        }
    return groups


def evaluate(
    corpus: Corpus,
    models,
    *,
    batch_size: int = 16,
    device: str = "cpu",
    n_bootstrap: int = 1000,
    seed: int = 0,
    level: float = 0.95,
    limit: int | None = None,
    progress: bool = False,
) -> "Evaluation":
    """Score one or more models on a corpus, reading each clip once for all of them.

    Args:
        corpus: from :func:`wav2small.corpora.msp_podcast`, ``csv_corpus`` or ``label_store_corpus``.
        models: a model spec or a list of them (student folder, hub id, teacher, ``.onnx`` file or
            export folder, torch module, runner), or a dict ``{name: spec}``.
        batch_size: clips per forward pass; only clips of equal length share a batch.
        device: ``cpu`` or ``cuda``.
        n_bootstrap: bootstrap resamples over clips for the intervals (0: none).
        seed: seed of the resampling.
        level: interval coverage (0.95: the 2.5 and 97.5 percentiles).
        limit: score only the first ``limit`` clips (a quick look; recorded in the report).
        progress: show a progress bar.

    Clips whose file is missing or unreadable are left out of every metric, counted
    (``n_missing``, ``n_unreadable``) and listed with reasons in the report; all models are scored
    on the same clips. Metrics use whole clips, truth and predictions on the same 0..1 scale.

    Example (it needs files or a download, so it is not run as a doctest)::

        result = evaluate(msp_podcast("MSP-PODCAST-1.11", split="Test1"), ["runs/w2s/best"])
        result.save("results/test1")
    """
    named = _named_models(models)
    if not named:
        raise ValueError("no model to evaluate")
    if limit is not None:
        corpus = Corpus(corpus.name, corpus.clips.head(int(limit)).reset_index(drop=True), corpus.info, corpus.read)
    if corpus.clips[list(LABELS)].isna().any(axis=None):
        raise ValueError(f"{corpus.name}: some clips have no truth; open the corpus with its unrated rows left out")
    if not len(corpus):
        raise ValueError(f"{corpus.name}: no rated clips to score ({corpus.info.get('n_unrated', 0)} rows without ratings were left out)")
    runners = {name: load_model(spec, device=device) for name, spec in named.items()}
    began = time.perf_counter()
    predictions, errors = predict_corpus(corpus, runners, batch_size=batch_size, progress=progress)
    seconds = time.perf_counter() - began

    clips = corpus.clips
    missing = sorted(i for i, reason in errors.items() if reason == MISSING)
    unreadable = sorted(i for i, reason in errors.items() if reason != MISSING)
    scored = np.array([i not in errors for i in range(len(clips))])
    _warn_left_out(corpus, clips, missing, unreadable)

    truth = clips[list(LABELS)].to_numpy(np.float64)[scored]
    kept = clips[scored].reset_index(drop=True)
    scored_predictions = {name: p[scored] for name, p in predictions.items()}
    options = {"n_resamples": n_bootstrap, "seed": seed, "level": level}
    report = {
        "corpus": {"name": corpus.name, **corpus.info},
        "settings": {"batch_size": batch_size, "device": device, "n_bootstrap": n_bootstrap, "seed": seed,
                     "level": level, "limit": limit, "interval": "percentile bootstrap over clips", "audio": "whole clips"},
        "versions": _versions(),
        "counts": {"n_listed": len(clips), "n_missing": len(missing), "n_unreadable": len(unreadable),
                   "n_evaluated": int(scored.sum()), "n_unrated": int(corpus.info.get("n_unrated", 0))},
        "timing": {"seconds": seconds, "clips_per_second": int(scored.sum()) / seconds if seconds > 0 else None},
        "models": {name: {"spec": str(spec) if isinstance(spec, (str, Path)) else type(spec).__name__,
                          "about": _describe(runners[name]),
                          "metrics": score(truth, scored_predictions[name], **options)}
                   for name, spec in named.items()},
        "missing": [clips["file"].iloc[i] for i in missing],
        "unreadable": [{"file": clips["file"].iloc[i], "reason": errors[i]} for i in unreadable],
    }
    if "gender" in kept.columns:
        report["by_gender"] = _group_scores(kept, truth, scored_predictions, "gender", min_size=2, **options)
    if "speaker" in kept.columns:
        report["by_speaker"] = _group_scores(kept, truth, scored_predictions, "speaker", min_size=2, **{**options, "n_resamples": 0})

    table = clips.drop(columns=[c for c in ("params",) if c in clips.columns]).rename(columns={d: f"truth.{d}" for d in LABELS})
    for name, p in predictions.items():
        for k, dim in enumerate(LABELS):
            table[f"{name}.{dim}"] = p[:, k]
    table["error"] = [errors.get(i, "") for i in range(len(clips))]
    return Evaluation(report, table)


def _warn_left_out(corpus, clips, missing, unreadable):
    if missing:
        warnings.warn(f"{corpus.name}: {len(missing)} of {len(clips)} listed files are missing on disk "
                      f"(first: {clips['file'].iloc[missing[0]]}); they are left out of the metrics and listed in the report",
                      stacklevel=3)
    if unreadable:
        warnings.warn(f"{corpus.name}: {len(unreadable)} of {len(clips)} clips could not be read or scored "
                      f"(first: {clips['file'].iloc[unreadable[0]]}); they are left out of the metrics and listed "
                      "in the report with reasons", stacklevel=3)


@dataclass
class Evaluation:
    """The result of :func:`evaluate`: ``report`` (every number, setting and version, JSON-ready)
    and ``predictions`` (one row per listed clip: truth, each model's output, and the reason a
    clip was not scored)."""

    report: dict
    predictions: pd.DataFrame

    @property
    def models(self) -> list[str]:
        return list(self.report["models"])

    def metric(self, name: str = "ccc") -> pd.DataFrame:
        """Point values of ``name`` (ccc, pearson, mae): one row per model, columns A, D, V and mean."""
        return pd.DataFrame(
            {m: {c: self.report["models"][m]["metrics"][name][c]["value"] for c in COLUMNS} for m in self.models}
        ).T.astype(float)

    def markdown(self) -> str:
        """The report as Markdown: corpus, counts, one table per metric, breakdowns."""
        r, counts = self.report, self.report["counts"]
        corpus, settings = r["corpus"], r["settings"]
        reference = corpus.get("reference", "truth")
        lines = [f"# Evaluation on {corpus['name']}", ""]
        if corpus.get("caveat"):
            lines += [f"> **{corpus['caveat']}**", ""]
        lines.append(f"- reference: {reference}" + (
            f" '{corpus['teacher_name']}' (its outputs are the truth here: CCC says how faithfully a model follows the teacher)"
            if reference == "teacher" and corpus.get("teacher_name") else ""))
        for key in ("corpus", "version", "split", "target", "views", "labels"):
            if corpus.get(key) is not None:
                lines.append(f"- {key}: {corpus[key]}")
        teacher = (corpus.get("store") or {}).get("teacher")
        if isinstance(teacher, dict):  # what the name stands for: its class and where its weights came from
            lines.append(f"- teacher: {teacher.get('name')} = {teacher.get('class', '?')} from {teacher.get('source', '?')}")
        elif teacher:
            lines.append(f"- teacher: {teacher}")
        lines.append("- models: " + "; ".join(f"{m} = {r['models'][m]['spec']}" for m in self.models))
        lines += [
            f"- clips: {counts['n_listed']} listed, {counts['n_missing']} missing on disk, {counts['n_unreadable']} unreadable, "
            f"**{counts['n_evaluated']} evaluated**; {counts['n_unrated']} rows without ratings left out",
            f"- intervals: {settings['level']:.0%} {settings['interval']}, {settings['n_bootstrap']} resamples, seed {settings['seed']}",
            f"- wav2small {r['versions']['wav2small']}" + (f", first {settings['limit']} clips only" if settings["limit"] else ""),
            "",
        ]
        for name, title in (("ccc", "CCC"), ("pearson", "Pearson"), ("mae", "MAE (0..1 scale)")):
            lines += [f"## {title}", "", _table_header("model"),
                      *(_table_row(m, r["models"][m]["metrics"][name]) for m in self.models), ""]
        if r.get("by_gender"):
            lines += ["## CCC by gender", "", _table_header("model | gender | n")]
            for gender, group in r["by_gender"].items():
                lines += [_table_row(f"{m} | {gender} | {group['n']}", s["ccc"]) for m, s in group["models"].items()]
            lines.append("")
        if r.get("by_speaker"):
            lines += ["## By speaker", "", "Per-speaker CCC (speakers with 2 or more clips, in by_speaker.csv): median over speakers", "",
                      _table_header("model | speakers")]
            speakers = self.by_speaker()
            for m in self.models:
                frame = speakers[speakers["model"] == m]
                median = {c: {"value": _number(frame[f"ccc.{c}"].median()), "low": None, "high": None} for c in COLUMNS}
                lines.append(_table_row(f"{m} | {len(frame)}", median))
            lines.append("")
        if r["missing"] or r["unreadable"]:
            lines += ["## Clips left out", ""]
            lines += [f"- {file}: {MISSING}" for file in r["missing"][:20]]
            lines += [f"- {e['file']}: {e['reason']}" for e in r["unreadable"][:20]]
            if len(r["missing"]) > 20 or len(r["unreadable"]) > 20:
                lines.append("- ... (all of them in report.json)")
            lines.append("")
        lines += ["![CCC per model and dimension](ccc.png)", "", "![prediction vs truth](scatter.png)", ""]
        return "\n".join(lines)

    def by_speaker(self) -> pd.DataFrame:
        """One row per (speaker, model): n and point CCC, Pearson, MAE per dimension and mean."""
        rows = []
        for speaker, group in (self.report.get("by_speaker") or {}).items():
            for m, s in group["models"].items():
                rows.append({"speaker": speaker, "model": m, "n": group["n"],
                             **{f"{metric}.{c}": s[metric][c]["value"] for metric in METRICS for c in COLUMNS}})
        return pd.DataFrame(rows)

    def save(self, directory) -> dict:
        """Write report.json, report.md, predictions.csv, by_speaker.csv (if any), ccc.png and
        scatter.png into ``directory``; returns ``{kind: path}``."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        paths = {
            "json": directory / "report.json",
            "markdown": directory / "report.md",
            "predictions": directory / "predictions.csv",
            "ccc_plot": directory / "ccc.png",
            "scatter_plot": directory / "scatter.png",
        }
        write_json(paths["json"], self.report, allow_nan=False)
        write_text(paths["markdown"], self.markdown())
        with atomic_path(paths["predictions"]) as tmp:
            self.predictions.to_csv(tmp, index=False, float_format="%.6f")
        if self.report.get("by_speaker"):
            paths["by_speaker"] = directory / "by_speaker.csv"
            with atomic_path(paths["by_speaker"]) as tmp:
                self.by_speaker().to_csv(tmp, index=False, float_format="%.6f")
        plot_ccc(self, paths["ccc_plot"])
        plot_scatter(self, paths["scatter_plot"])
        return paths


def _cell(entry) -> str:
    if entry["value"] is None:
        return "n/a"
    if entry["low"] is None:
        return f"{entry['value']:.3f}"
    return f"{entry['value']:.3f} [{entry['low']:.3f}, {entry['high']:.3f}]"


def _table_header(first: str) -> str:
    names = [*first.split(" | "), *COLUMNS]
    return "| " + " | ".join(names) + " |\n|" + "---|" * len(names)


def _table_row(first: str, metric: dict) -> str:
    return f"| {first} | " + " | ".join(_cell(metric[c]) for c in COLUMNS) + " |"


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")  # files only, no display needed
    import matplotlib.pyplot as plt

    return plt


def _reference(evaluation: Evaluation) -> str:
    """What the truth of the corpus is, for axis labels and titles: "teacher", "human ratings", ..."""
    corpus = evaluation.report["corpus"]
    if corpus.get("reference") == "teacher" and corpus.get("teacher_name"):
        return f"teacher ({corpus['teacher_name']})"
    return corpus.get("reference", "truth")


def _plot_title(evaluation: Evaluation, what: str) -> str:
    """The corpus name and ``what``, and the corpus's caveat on a line of its own."""
    import textwrap

    corpus = evaluation.report["corpus"]
    title = textwrap.fill(f"{corpus['name']}: {what}", 80)
    return title + ("\n" + textwrap.fill(corpus["caveat"], 80) if corpus.get("caveat") else "")


def _span(*values, pad: float = 0.05) -> tuple[float, float]:
    """Axis limits around the finite ``values``, with ``pad`` of their range on each side."""
    finite = np.concatenate([np.asarray(v, np.float64).ravel() for v in values])
    finite = finite[np.isfinite(finite)]
    if not finite.size:
        return 0.0, 1.0
    lo, hi = float(finite.min()), float(finite.max())
    margin = pad * (hi - lo) if hi > lo else 0.05
    return lo - margin, hi + margin


def plot_ccc(evaluation: Evaluation, path):
    """Bar chart: CCC per dimension (and mean) for each model, with the bootstrap intervals."""
    plt = _pyplot()
    models = evaluation.models
    width = 0.8 / len(models)
    fig, ax = plt.subplots(figsize=(3 + len(COLUMNS) * (0.8 + 0.25 * len(models)), 4))
    lowest = 0.0
    for j, m in enumerate(models):
        ccc = evaluation.report["models"][m]["metrics"]["ccc"]
        values = np.array([np.nan if ccc[c]["value"] is None else ccc[c]["value"] for c in COLUMNS])
        low = np.array([v if ccc[c]["low"] is None else ccc[c]["low"] for c, v in zip(COLUMNS, values)])
        high = np.array([v if ccc[c]["high"] is None else ccc[c]["high"] for c, v in zip(COLUMNS, values)])
        x = np.arange(len(COLUMNS)) + (j - (len(models) - 1) / 2) * width
        ax.bar(x, values, width * 0.9, label=m, yerr=np.nan_to_num([values - low, high - values]), capsize=3)
        for xi, v, top in zip(x, values, high):
            if not np.isnan(v):
                ax.text(xi, max(v, top, 0) + 0.01, f"{v:.2f}", ha="center", va="bottom", fontsize=7)
        lowest = min(lowest, np.nanmin(np.append(low, 0)))
    ax.set_xticks(np.arange(len(COLUMNS)), list(COLUMNS))
    ax.set_ylabel("CCC")
    ax.set_ylim(min(0, lowest - 0.05), 1.05)
    ax.axhline(0, color="black", linewidth=0.6)
    ax.grid(axis="y", alpha=0.3)
    level = evaluation.report["settings"]["level"]
    ax.set_title(_plot_title(evaluation, f"CCC against the {_reference(evaluation)}, {level:.0%} bootstrap intervals"), fontsize=9)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0), frameon=False)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=120, format="png")
    plt.close(fig)


def plot_scatter(evaluation: Evaluation, path):
    """Prediction against truth per dimension (columns) and model (rows), with the identity line."""
    plt = _pyplot()
    table, models = evaluation.predictions, evaluation.models
    table = table[table["error"] == ""]
    fig, axes = plt.subplots(len(models), len(LABELS), figsize=(3.3 * len(LABELS), 3.2 * len(models)), squeeze=False)
    alpha = float(np.clip(300 / max(1, len(table)), 0.05, 0.8))  # dense clouds stay readable
    for j, m in enumerate(models):
        for k, dim in enumerate(LABELS):
            ax = axes[j, k]
            truth, prediction = table[f"truth.{dim}"].to_numpy(), table[f"{m}.{dim}"].to_numpy()
            # Axes fit the data (both the same, so a student that squeezes the range looks squeezed);
            # the nominal 0..1 scale is drawn dotted where it is in view, and its share is written.
            lo, hi = _span(truth, prediction)
            ax.plot([lo, hi], [lo, hi], color="grey", linewidth=1, linestyle="--", label="identity")
            for edge in (0.0, 1.0):
                ax.axvline(edge, color="grey", linewidth=0.8, linestyle=":")
                ax.axhline(edge, color="grey", linewidth=0.8, linestyle=":")
            ax.scatter(truth, prediction, s=6, alpha=alpha, edgecolors="none", rasterized=True)
            ax.set_xlim(lo, hi)
            ax.set_ylim(lo, hi)
            ax.set_aspect("equal")
            ax.text(0.02, 0.98, f"shown: {lo:.2f} to {hi:.2f}\n(nominal scale 0 to 1)", transform=ax.transAxes,
                    fontsize=6, va="top", color="grey")
            ccc = evaluation.report["models"][m]["metrics"]["ccc"][dim]["value"]
            ax.set_title(f"{dim}: CCC {'n/a' if ccc is None else f'{ccc:.3f}'}", fontsize=9)
            ax.set_xlabel(_reference(evaluation), fontsize=8)
            ax.set_ylabel(f"{m}\nprediction" if k == 0 else "prediction", fontsize=8)
            ax.tick_params(labelsize=7)
    fig.suptitle(_plot_title(evaluation, f"prediction against the {_reference(evaluation)}, {len(table)} clips"), fontsize=9)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)
