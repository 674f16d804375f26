"""The student zoo, measured: every registered student distilled with the same budget (same label
store, steps, batch, learning rate and seed), exported to fp32 and int8 ONNX and measured the way
`wav2small search` measures a candidate (wav2small.search.measure_student).

    python bench/zoo.py                      # offline: demo corpus, tiny teacher fitted to it
    python bench/zoo.py --store exp/w2s/labels --test-store exp/w2s/labels_test --steps 20000

Without --store, the labels come from stages 0-1 of recipes/distill.sh on the espeak-ng demo
corpus (480 clips) with a tiny Dawn-shaped teacher fitted to the corpus's proxy ratings
(`wav2small make-tiny-teacher --fit`): its outputs follow the prosody behind those ratings, so the
fidelity column ranks how well each student follows a teacher that reads prosody, not anything
about emotion. With a real teacher's label stores the same command gives the real table.

Writes to --out (bench/results): zoo.md (the table, the machine and the budget), zoo.json (every
number) and zoo.png (held-out fidelity against int8 latency and against MAC per second of audio),
and rewrites the student table of README.md between its zoo markers. Each student's measurement
is kept in --work/zoo/results.jsonl: a killed run resumes with the students not done yet.

The committed run (bench/results/zoo.md) was cut to fit a machine at load 15 (2 cores shared by
several agents): one preset per architecture at its small size and the card model, 100 steps x 16
one-second crops each (1,600 crops, about one pass over the demo store's 1,714 clean crops and
views), one torch thread, 10 timed runs:

    python bench/zoo.py --store exp/zoo-bench/exp/labels --test-store exp/zoo-bench/exp/labels_test \
        --work exp/zoo100 --steps 100 --repeats 10 --threads 1 --students wav2small mobilenetv3-small \
        mobilenetv2-0.35 mnasnet-b1-0.5 efficientformer-tiny t2t-vit-tiny mobilenetv4-conv-small

(the stores made by a plain `python bench/zoo.py`). Students this briefly trained rank by how fast
they learn as much as by how far they could go: the defaults (every preset, 200 steps) or a longer
--steps give the fairer table where there is time.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))
from export_latency import cpu_peak  # noqa: E402  the CPU description every bench prints

from wav2small.models import create_student, list_students  # noqa: E402
from wav2small.search import Budget, Candidate, measure_student, read_results  # noqa: E402

README_BEGIN = "<!-- zoo table: written by bench/zoo.py from bench/results/zoo.json; edit there, not here -->"
README_END = "<!-- end of zoo table -->"

#: What each student is, for the README table.
DESCRIPTIONS = {
    "wav2small": "the published Wav2Small card model (13 channels); its state-dict names are the card's, so "
                 "`audeering/wav2small` loads strictly (checked on a card-shaped folder)",
    "wav2small-72k": "the card topology at 33 channels: the paper's 72K size (71,918 state values)",
    "mobilenetv2": "MobileNetV2: inverted residuals, linear bottlenecks, ReLU6",
    "mobilenetv3": "MobileNetV3 (squeeze-excitation, hard-swish)",
    "mobilenetv4": "MobileNetV4-Conv (universal inverted bottlenecks)",
    "mnasnet-a1": "MnasNet-A1, found by latency-aware search (with squeeze-excitation)",
    "mnasnet": "MnasNet-B1, found by latency-aware search",
    "efficientformer": "EfficientFormer: pooling-mixer conv stages, attention in the last stage",
    "t2t-vit": "T2T-ViT: tokens-to-token soft splits (Performer attention), then a small ViT",
}


def demo_stores(work: Path, clips: int, crop_dur: float) -> tuple[Path, Path]:
    """Stages 0-1 of the recipe on the demo corpus with a tiny teacher fitted to it (skipped when done)."""
    exp = work / "exp"
    cli = [sys.executable, "-m", "wav2small"]
    if not (work / "demo").exists():
        subprocess.run([*cli, "demo-corpus", str(work / "demo"), "--clips", str(clips)], check=True)
    if not (work / "teacher").exists():
        subprocess.run([*cli, "make-tiny-teacher", str(work / "teacher"), "--kind", "dawn", "--fit", str(work / "demo")],
                       check=True)
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}  # the recipe calls wav2small
    subprocess.run([str(ROOT / "recipes" / "distill.sh"), "--data", str(work / "demo"), "--teacher", str(work / "teacher"),
                    "--out", str(exp), "--crop-dur", str(crop_dur), "--views", "1", "--stop-stage", "1"], check=True, env=env)
    return exp / "labels", exp / "labels_test"


def description(name: str) -> str:
    return DESCRIPTIONS.get(name) or DESCRIPTIONS[create_student(name).architecture]


def table(rows: list[dict]) -> list[str]:
    lines = ["| student | what it is | parameters | M MAC / s of audio | int8 file | int8 ms / 5 s | fp32 ms / 5 s "
             "| peak activations | held-out fidelity int8 (fp32) | int8 vs fp32 |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        if "error" in r:
            lines.append(f"| `{r['key']}` | {description(r['key'])} | failed: {r['error']} |" + " |" * 7)
            continue
        check = "ok" if r["int8_check"] else f"Pearson {r['int8_pearson_min']:.3f}"
        lines.append(f"| `{r['key']}` | {description(r['key'])} | {r['parameters']:,} | {r['mmacs_per_second']:.1f} | "
                     f"{r['int8_bytes'] / 1024:,.0f} KB | {r['int8_ms']:.1f} | {r['fp32_ms']:.1f} | "
                     f"{r['peak_activation_kib']:,.0f} KiB | {r['int8_fidelity']:.3f} ({r['fp32_fidelity']:.3f}) | {check} |")
    return lines


def readme_table(rows: list[dict]) -> list[str]:
    """Every preset, measured or not: the README lists them all."""
    measured = {r["key"]: r for r in rows if "error" not in r}
    failed = {r["key"] for r in rows if "error" in r}
    lines = ["| student | what it is | parameters | M MAC / s of audio | int8 file | int8 ms / 5 s | held-out fidelity (int8) |",
             "|---|---|---|---|---|---|---|"]
    for name in list_students():
        r = measured.get(name)
        cost = (f"{r['mmacs_per_second']:.1f} | {r['int8_bytes'] / 1024:,.0f} KB | {r['int8_ms']:.1f} | {r['int8_fidelity']:.3f}"
                if r else "export failed in this run (see zoo.md) | | |" if name in failed else "not in this run | | |")
        lines.append(f"| `{name}` | {description(name)} | {create_student(name).num_parameters():,} | {cost} |")
    return lines


def setup_text(info: dict) -> str:
    return (f"Budget: every student {info['budget']['steps']} steps x {info['budget']['batch_size']} crops, lr "
            f"{info['budget']['lr']}, seed {info['budget']['seed']}, on {info['store']} ({info['train_rows']} labelled "
            f"crops); fidelity: mean CCC with the teacher on {info['test_clips']} held-out clips ({info['test_store']}). "
            f"Teacher: {info['teacher']}. Latency: onnxruntime, batch 1, 5 s of audio, one thread, best of "
            f"{info['repeats']} runs, on {info['cpu']} ({os.cpu_count()} cores; load average {info['load']} during the "
            f"run: a shared machine, so ratios between rows mean more than the milliseconds). MACs, file bytes and "
            f"peak activation memory (5 s, int8 graph) come from the exported graph. 'int8 vs fp32': the export's "
            f"own check (Pearson >= 0.99 and CCC >= 0.98 per dimension on held-out crops), else the lowest Pearson.")


def write_outputs(rows: list[dict], info: dict, out: Path) -> None:
    (out / "zoo.json").write_text(json.dumps({"setup": info, "students": rows}, indent=2, default=str) + "\n")
    (out / "zoo.md").write_text("\n".join(["# The student zoo", "", setup_text(info), "", *table(rows), "",
                                           "![fidelity against cost](zoo.png)", ""]))
    plot(rows, out / "zoo.png", title=f"every student {info['budget']['steps']} steps x {info['budget']['batch_size']} crops; "
                                     "teacher, data and machine in zoo.md")


def pareto(points: list[tuple[float, float]]) -> list[int]:
    """Indices of the points no other beats on both (lower cost, higher fidelity), cheapest first."""
    keep = [i for i, (c, f) in enumerate(points)
            if not any((c2 <= c and f2 > f) or (c2 < c and f2 >= f) for c2, f2 in points)]
    return sorted(keep, key=lambda i: points[i][0])


def plot(rows: list[dict], path: Path, *, title: str) -> None:
    import matplotlib

    rows = [r for r in rows if "error" not in r]

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    fig, axes = plt.subplots(1, 2, figsize=(13, 5.2), sharey=True)
    for ax, column, label in ((axes[0], "int8_ms", "int8 onnxruntime latency, 5 s of audio, one thread (ms)"),
                              (axes[1], "mmacs_per_second", "multiply-accumulates per second of audio (millions)")):
        points = [(r[column], r["int8_fidelity"]) for r in rows]
        ax.scatter(*zip(*points), color="tab:blue")
        for r, (x, y) in zip(rows, points):
            ax.annotate(r["key"], (x, y), textcoords="offset points", xytext=(4, 3), fontsize=7)
        front = pareto(points)
        ax.plot([points[i][0] for i in front], [points[i][1] for i in front], color="tab:orange", label="Pareto front")
        ax.set_xscale("log")
        ax.xaxis.set_major_locator(matplotlib.ticker.LogLocator(subs=(1, 2, 5)))
        ax.xaxis.set_major_formatter(matplotlib.ticker.FormatStrFormatter("%g"))  # 2, 5, 20 rather than 2 x 10^0
        ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
        ax.set_xlabel(label)
        ax.grid(alpha=0.3)
        ax.legend(loc="lower right")
    axes[0].set_ylabel("held-out fidelity to the teacher (mean CCC, int8 model)")
    fig.suptitle(f"Student zoo: fidelity against cost ({title})")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def rewrite_readme(rows: list[dict], info: dict, readme: Path) -> None:
    text = readme.read_text()
    if README_BEGIN not in text or README_END not in text:
        raise ValueError(f"{readme}: no zoo markers ({README_BEGIN!r} ... {README_END!r})")
    head, rest = text.split(README_BEGIN, 1)
    _, tail = rest.split(README_END, 1)
    block = [README_BEGIN, *readme_table(rows), "",
             f"Measured by `python bench/zoo.py` ({info['teacher_short']}; every student "
             f"{info['budget']['steps']} steps x {info['budget']['batch_size']} crops; latency on {info['cpu']}, one "
             "thread): see [bench/results/zoo.md](bench/results/zoo.md) and its plot. Fidelity is the held-out mean CCC "
             "with the teacher: with the demo corpus's tiny teacher it ranks how well students follow a teacher "
             "that reads prosody, not emotion; with your own label stores the same command gives your table.", README_END]
    readme.write_text(head + "\n".join(block) + tail)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--store", help="label store to distil on (default: the demo corpus, see above)")
    parser.add_argument("--test-store", help="label store of held-out audio (with --store)")
    parser.add_argument("--teacher", default="a tiny Dawn-shaped teacher fitted to the demo corpus's proxy ratings "
                        "(wav2small make-tiny-teacher --fit)",
                        help="what labelled the stores, for the table's caption")
    parser.add_argument("--students", nargs="+", default=list_students(), help="presets (default: all)")
    parser.add_argument("--steps", type=int, default=200, help="training steps per student (default: %(default)s)")
    parser.add_argument("--batch-size", type=int, default=16, help="crops per step (default: %(default)s)")
    parser.add_argument("--lr", type=float, default=2e-3, help="peak learning rate (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=0, help="seed of every student's training (default: %(default)s)")
    parser.add_argument("--clips", type=int, default=480, help="demo corpus size without --store (default: %(default)s)")
    parser.add_argument("--crop-dur", type=float, default=1.0, help="seconds per labelled demo crop (default: %(default)s)")
    parser.add_argument("--repeats", type=int, default=15, help="timed runs per model (default: %(default)s)")
    parser.add_argument("--threads", type=int, help="torch threads for training (default: torch's choice)")
    parser.add_argument("--work", default="exp/zoo-bench", help="working folder, resumable (default: %(default)s)")
    parser.add_argument("--out", default=str(ROOT / "bench" / "results"), help="folder for zoo.md/.json/.png")
    parser.add_argument("--readme", default=str(ROOT / "README.md"), help="README whose zoo table is rewritten ('' = none)")
    args = parser.parse_args(argv)

    work = Path(args.work)
    if args.store:
        if not args.test_store:
            parser.error("--store needs --test-store")
        store, test_store, teacher_short = Path(args.store), Path(args.test_store), args.teacher
    else:
        store, test_store = demo_stores(work, args.clips, args.crop_dur)
        teacher_short = "offline demo corpus, tiny teacher fitted to its proxy ratings"
    budget = Budget(steps=args.steps, batch_size=args.batch_size, lr=args.lr, seed=args.seed)
    results = work / "zoo" / "results.jsonl"
    results.parent.mkdir(parents=True, exist_ok=True)
    settings = {"store": str(store), "test_store": str(test_store), "budget": vars(budget)}
    settings_path = work / "zoo" / "settings.json"
    if settings_path.exists() and json.loads(settings_path.read_text()) != settings:
        raise SystemExit(f"{work / 'zoo'} holds measurements with other settings; use another --work")
    settings_path.write_text(json.dumps(settings, indent=2) + "\n")

    done = {r["key"]: r for r in read_results(work / "zoo") if "error" not in r}
    for name in args.students:
        if name in done:
            continue
        print(f"zoo: {name} ...", flush=True)
        try:
            row = measure_student(Candidate.of(name), store=store, test_store=test_store, folder=work / "zoo" / name,
                                  budget=budget, threads=args.threads, repeats=args.repeats)
        except (RuntimeError, ValueError) as error:  # recorded in the table; a rerun tries it again
            row = {"key": name, "error": str(error)}
        with open(results, "a") as f:
            f.write(json.dumps(row, default=str) + "\n")
        done[name] = row
        if "error" in row:
            print(f"zoo: {name}: FAILED: {row['error']}", flush=True)
            continue
        print(f"zoo: {name}: fidelity {row['int8_fidelity']:.3f} int8 ({row['fp32_fidelity']:.3f} fp32), "
              f"{row['int8_ms']:.1f} ms int8, {row['mmacs_per_second']:.1f} M MAC/s, {row['seconds']:.0f} s", flush=True)

    from wav2small.store import LabelStore

    rows = [done[name] for name in args.students]
    cpu = cpu_peak()
    info = {"store": str(store), "test_store": str(test_store), "teacher": args.teacher, "teacher_short": teacher_short,
            "budget": vars(budget), "train_rows": len(LabelStore(store).read(columns=["file"])),
            "test_clips": next(r["test_clips"] for r in rows if "test_clips" in r), "repeats": args.repeats, "cpu": cpu["cpu"],
            "load": " / ".join(f"{x:.1f}" for x in os.getloadavg())}
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    write_outputs(rows, info, out)
    if args.readme:
        rewrite_readme(rows, info, Path(args.readme))
    print("\n".join(table(rows)))


if __name__ == "__main__":
    main()
