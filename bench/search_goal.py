"""Issue 15's goal, measured: does `wav2small search` find a student of at most 10 M
multiply-accumulates per second of audio (about 1/6 of the card model's 64.5 M) whose held-out
fidelity to the teacher is within 0.02 mean CCC of the card model's under the same budget?

    python bench/search_goal.py                 # after bench/zoo.py: its demo stores
    python bench/search_goal.py --store exp/w2s/labels --test-store exp/w2s/labels_test --steps 2000

Runs `wav2small search --cost macs --target 10` over a space aimed at that budget (Wav2Small with
an 8 ms hop and frame instead of 2 ms and 4 ms, the pool after the first block instead of the
third, 10 or 13 channels, 5 or 7 blocks: 5.7 to 10.4 M MAC/s; MobileNetV3-small costs 18-23 M MAC/s
at its 10 ms hop, so it is not in it), then writes bench/results/search.md: the verdict, every
candidate (the card model first: it is the reference) and the search's Pareto front. The search
folder (--out) resumes: a killed run measures only what is missing when run again. The committed
report is this command with --threads 1 (300 steps), and below it the same search at 100 steps
(--steps 100 --out exp/search-goal100), the zoo table's budget.

Without --store it uses bench/zoo.py's demo stores (run that first): a tiny teacher fitted to the
demo corpus's proxy ratings, so the verdict is about following that teacher, not emotion.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))
from export_latency import cpu_peak  # noqa: E402  the CPU description every bench prints

from wav2small.options import SearchConfig  # noqa: E402
from wav2small.search import pareto_markdown, search  # noqa: E402

#: MACs per second of audio (millions) a candidate may cost, and how far below the card model's
#: held-out mean CCC its own may fall.
GOAL_MMACS, GOAL_CCC_GAP = 10.0, 0.02

SPACE = {"wav2small": {"channels": [10, 13], "n_fft": [128], "hop": [128], "depth": [5, 7], "pool_after": [1]}}

def verdict(frame) -> list[str]:
    reference = frame[frame["key"] == "wav2small"].iloc[0]
    bar = reference["int8_fidelity"] - GOAL_CCC_GAP
    cheap = frame[frame["mmacs_per_second"] <= GOAL_MMACS].sort_values("int8_fidelity", ascending=False)
    lines = [f"Card model (reference, same budget): {reference['mmacs_per_second']:.1f} M MAC/s, held-out fidelity "
             f"{reference['int8_fidelity']:.3f} (int8). Goal: <= {GOAL_MMACS:g} M MAC/s at fidelity >= {bar:.3f}."]
    if cheap.empty:
        return lines + ["No candidate measured was within the MAC budget."]
    best = cheap.iloc[0]
    met = best["int8_fidelity"] >= bar
    lines.append(f"Best candidate within the budget: `{best['key']}`, {best['mmacs_per_second']:.1f} M MAC/s "
                 f"({reference['mmacs_per_second'] / best['mmacs_per_second']:.1f}x fewer), {best['parameters']:,} parameters, "
                 f"fidelity {best['int8_fidelity']:.3f} (int8; {best['fp32_fidelity']:.3f} fp32): the goal is "
                 + ("**met**" if met else f"**not met** ({reference['int8_fidelity'] - best['int8_fidelity']:.3f} below the card model)")
                 + ".")
    return lines


def table(frame) -> list[str]:
    lines = ["| candidate | parameters | M MAC / s | int8 ms / 5 s | fidelity int8 (fp32) | reward |", "|---|---|---|---|---|---|"]
    order = [frame[frame["key"] == "wav2small"], frame[frame["key"] != "wav2small"].sort_values("mmacs_per_second")]
    for part in order:
        for _, r in part.iterrows():
            lines.append(f"| `{r['key']}` | {r['parameters']:,} | {r['mmacs_per_second']:.1f} | {r['int8_ms']:.2f} | "
                         f"{r['int8_fidelity']:.3f} ({r['fp32_fidelity']:.3f}) | {r['reward']:.4f} |")
    return lines


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--store", default="exp/zoo-bench/exp/labels", help="label store (default: bench/zoo.py's demo store)")
    parser.add_argument("--test-store", default="exp/zoo-bench/exp/labels_test", help="held-out label store")
    parser.add_argument("--out", default="exp/search-goal", help="search folder, resumable (default: %(default)s)")
    parser.add_argument("--candidates", type=int, default=5, help="candidates, the reference included (default: %(default)s)")
    parser.add_argument("--steps", type=int, default=300, help="training steps per candidate (default: %(default)s, the committed run's)")
    parser.add_argument("--batch-size", type=int, default=16, help="crops per step (default: %(default)s)")
    parser.add_argument("--repeats", type=int, default=10, help="timed runs per model (default: %(default)s)")
    parser.add_argument("--threads", type=int, help="torch threads for training (default: torch's choice)")
    parser.add_argument("--results", default=str(ROOT / "bench" / "results" / "search.md"), help="where to write the report")
    args = parser.parse_args(argv)

    config = SearchConfig(store=args.store, test_store=args.test_store, out=args.out, space=SPACE, candidates=args.candidates,
                          cost="macs", target=GOAL_MMACS, steps=args.steps, batch_size=args.batch_size, threads=args.threads,
                          repeats=args.repeats)
    frame = search(config)
    command = (f"python bench/search_goal.py --store {args.store} --test-store {args.test_store} --candidates {args.candidates} "
               f"--steps {args.steps} --batch-size {args.batch_size}")
    text = ["# The search goal: <= 10 M MAC per second of audio within 0.02 mean CCC of the card model", "",
            f"`{command}` ran `wav2small search --cost macs --target {GOAL_MMACS:g}` over {SPACE} (every candidate "
            f"{config.steps} steps x {config.batch_size} crops, seed {config.seed}; fidelity: held-out mean CCC with the "
            f"teacher of the int8 model; latency on {cpu_peak()['cpu']}, one thread, load average "
            f"{' / '.join(f'{x:.1f}' for x in os.getloadavg())} at the end).", "", *verdict(frame), "", "## Every candidate", "",
            *table(frame), "", pareto_markdown(frame, cost="macs", exponent=config.exponent, title="Pareto front").replace("# ", "## ", 1)]
    Path(args.results).write_text("\n".join(text))
    print("\n".join(verdict(frame)))


if __name__ == "__main__":
    main()
