"""Save a tiny teacher (2 layers, hidden size 32) in the published Dawn or Odyssey folder format,
for smoke runs of the pipeline without downloading the real teachers.

Without --fit its weights are random and its outputs meaningless. With --fit CORPUS it is trained
on the corpus's ratings (an MSP-Podcast-layout folder such as the demo corpus, whose ratings are
rule-based proxies, or a CSV corpus with arousal, dominance, valence columns), so its outputs follow
the prosody behind those ratings and a student's fidelity to it means something. It is still not
an emotion model: never distil a student you intend to use from it.

A fit on the demo corpus takes about a minute on 2 CPU cores (300 steps of 16 crops of 1.5 s) and
is the same for the same --seed. It prints the teacher's CCC against the ratings of held-out clips
(the Test1 split of an MSP-Podcast folder; a fifth of the files of a CSV corpus) and writes it to
DIR/fit.json.

examples:
  wav2small make-tiny-teacher runs/tiny --kind both
  wav2small make-tiny-teacher exp/teacher --kind dawn --fit exp/demo
  wav2small label audio/ --teacher runs/tiny/dawn+runs/tiny/odyssey --out runs/tiny-labels --crop-dur 2
"""

from __future__ import annotations

import sys
from pathlib import Path

HELP = "save a tiny teacher: random, or fitted to a corpus's ratings (smoke runs only)"


def add_arguments(parser):
    parser.add_argument("directory", help="where to write it (with --kind both: DIR/dawn and DIR/odyssey)")
    parser.add_argument("--kind", choices=("dawn", "odyssey", "both"), default="dawn", help="published format to mimic (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the weights (and of the fit) (default: %(default)s)")
    fit = parser.add_argument_group("fitting (--fit)")
    fit.add_argument("--fit", metavar="CORPUS", help="train the teacher on this corpus's ratings: an MSP-Podcast-layout folder or a CSV corpus")
    fit.add_argument("--split", default="Train", help="MSP-Podcast split to fit on (default: %(default)s)")
    fit.add_argument("--held-out-split", default="Test1", help="MSP-Podcast split to report the fit on (default: %(default)s)")
    fit.add_argument("--scale", default="0..1", choices=["0..1", "1..7"], help="rating scale of a CSV corpus (default: %(default)s)")
    fit.add_argument("--steps", type=int, default=300, help="training steps (default: %(default)s)")
    fit.add_argument("--crop-dur", type=float, default=1.5, help="seconds per training crop; shorter clips are left out (default: %(default)s)")
    fit.add_argument("--threads", type=int, default=1, help="torch CPU threads (default: %(default)s)")


def _fit_corpora(args):
    """(corpus to fit on, held-out corpus or None) for --fit."""
    from ..corpora import Corpus, corpus_kind, csv_corpus, msp_podcast
    from ..holdout import held_out

    kind = corpus_kind(args.fit)
    if kind == "msp-podcast":
        held_out = msp_podcast(args.fit, split=args.held_out_split)
        return msp_podcast(args.fit, split=args.split), held_out if len(held_out) else None
    if kind == "csv":
        corpus = csv_corpus(args.fit, scale=args.scale)
        held = corpus.clips["file"].isin(held_out(corpus.clips["file"], 0.2))
        part = lambda rows, name: Corpus(f"{corpus.name} ({name})", corpus.clips[rows].reset_index(drop=True), corpus.info)
        return part(~held, "fit"), part(held, "held out")
    raise ValueError(f"{args.fit}: --fit takes an MSP-Podcast-layout folder or a CSV corpus, not a {kind}")


def run(args) -> int:
    from ..testing import fit_tiny_teacher, save_tiny_teacher

    root = Path(args.directory)
    kinds = ("dawn", "odyssey") if args.kind == "both" else (args.kind,)
    places = [root / kind for kind in kinds] if args.kind == "both" else [root]
    banner = "!" * 78
    summaries = []
    if args.fit:
        corpus, held_out = _fit_corpora(args)
        for i, (kind, folder) in enumerate(zip(kinds, places)):
            summaries.append(fit_tiny_teacher(folder, corpus, kind=kind, held_out=held_out, steps=args.steps, crop_dur=args.crop_dur,
                                              seed=args.seed + i, threads=args.threads, progress=True))
        lines = [f"!! TINY TEACHER FITTED TO THE RATINGS OF: {corpus.name}",
                 "!! Its outputs follow the prosody behind those ratings. It is NOT an emotion model:",
                 "!! use it for smoke runs and method comparisons only, never for a student you will use."]
    else:
        for i, (kind, folder) in enumerate(zip(kinds, places)):
            save_tiny_teacher(folder, kind, seed=args.seed + i)
        lines = ["!! TINY RANDOM TEACHER: its A/D/V outputs are MEANINGLESS. Use it for smoke runs of",
                 "!! the pipeline only; never distil a student you intend to use from it."]
    print("\n".join([banner, *lines, banner]), file=sys.stderr)
    for folder, summary in zip(places, summaries or [None] * len(places)):
        print(f"wrote {folder}", file=sys.stderr)
        if summary:
            print(f"  fitted {summary['kind']} on {summary['clips']} clips in {summary['seconds']:.0f} s "
                  f"({len(summary['left_out'])} left out); CCC vs the ratings: {_ccc_line(summary)}", file=sys.stderr)
    print(f"use it with: --teacher {'+'.join(str(f) for f in places)}", file=sys.stderr)
    return 0


def _ccc_line(summary) -> str:
    parts = []
    for name, label in (("train_ccc", "fitted clips"), ("held_out_ccc", "held-out clips")):
        ccc = summary[name]
        if ccc:
            parts.append(f"{label} A {ccc['arousal']:.2f} D {ccc['dominance']:.2f} V {ccc['valence']:.2f} mean {ccc['mean']:.2f}")
    return "; ".join(parts)
