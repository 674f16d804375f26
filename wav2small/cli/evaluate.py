"""Score one or more models on a corpus: CCC, Pearson and MAE for arousal, dominance, valence and
their mean, with bootstrap 95 % intervals, breakdowns by gender and speaker, and plots.

CORPUS is an MSP-Podcast folder (MSP-PODCAST-<version>/ with Audios/ and
Labels/labels_consensus.csv; ratings 1..7 mapped by (y - 1) / 6, rows without ratings such as
Test3 left out), a CSV file (a file column, paths relative to the CSV, and one rating column
per dimension on the 0..1 or 1..7 scale), or a label store written by `wav2small label` (the
reference is then the teacher's outputs: CCC measures a student's fidelity to its teacher, not
emotion). A corpus.json in the corpus folder (the demo corpus writes one) names it and adds a
caveat to the report and plots. Every model hears the whole clip; each clip is read once for
all models. CCC and Pearson are unitless (-1..1, 1 = perfect); MAE is on the 0..1 scale. Files
missing on disk or unreadable are counted, listed in the report and left out of the metrics.

Writes into --output-dir: report.json (every number, setting and version), report.md,
predictions.csv (per clip), by_speaker.csv, ccc.png, scatter.png; prints the CCC table.

examples:
  wav2small evaluate /data/MSP-PODCAST-1.11 --split Test1 --model runs/w2s/best --model audeering/wav2small -o results/test1
  wav2small evaluate ratings.csv --scale 1..7 --arousal-column act --model export/model.onnx -o results/mine
  wav2small evaluate labels/dev --target combined --view 0 --model runs/w2s/best -o results/fidelity
"""

from __future__ import annotations

import argparse
import sys

from ..contract import LABELS

HELP = "CCC of models against human labels or a teacher, with intervals, report and plots"


def add_arguments(parser):
    parser.add_argument("corpus", help="MSP-Podcast folder, corpus CSV file, or label store folder")
    parser.add_argument("--model", "-m", action="append", required=True,
                        help="student folder, hub id, teacher, .onnx file or export folder; repeat to compare models")
    parser.add_argument("--output-dir", "-o", default="evaluation", help="folder for the report and plots (default: %(default)s)")
    parser.add_argument("--kind", default="auto", choices=["auto", "msp-podcast", "csv", "label-store"],
                        help="corpus kind (default: guessed from CORPUS)")
    msp = parser.add_argument_group("MSP-Podcast")
    msp.add_argument("--split", default="Test1", choices=["Train", "Development", "Test1", "Test2", "Test3"],
                     help="Split_Set to score (default: %(default)s)")
    msp.add_argument("--release", help="MSP-Podcast release, e.g. 1.11 (default: from the folder name MSP-PODCAST-<release>)")
    msp.add_argument("--version", dest="release", help=argparse.SUPPRESS)  # the old name of --release, still accepted
    csv = parser.add_argument_group("CSV corpus")
    csv.add_argument("--file-column", default="file", help="column with audio paths (default: %(default)s)")
    for dim in LABELS:
        csv.add_argument(f"--{dim}-column", default=dim, help=f"column with {dim} ratings (default: %(default)s)")
    csv.add_argument("--scale", default="0..1", choices=["0..1", "1..7"], help="rating scale of the CSV (default: %(default)s)")
    store = parser.add_argument_group("label store")
    store.add_argument("--target", default="combined", help="combined (teacher ensemble) or a member name (default: %(default)s)")
    store.add_argument("--view", type=int, action="append", help="keep only this view (0 = clean crop); repeatable (default: all)")
    store.add_argument("--allow-outside-paths", action="store_true",
                       help="read rows whose audio lies outside the folders the store was labelled from (if you trust the store)")
    run_group = parser.add_argument_group("run")
    run_group.add_argument("--batch-size", type=int, default=16, help="clips per forward pass, equal lengths only (default: %(default)s)")
    run_group.add_argument("--device", default="cpu", help="cpu or cuda (default: %(default)s)")
    run_group.add_argument("--bootstrap", type=int, default=1000, help="bootstrap resamples over clips, 0 for none (default: %(default)s)")
    run_group.add_argument("--seed", type=int, default=0, help="seed of the bootstrap (default: %(default)s)")
    run_group.add_argument("--limit", type=int, help="score only the first N clips (a quick look)")


def _reader_options(args, kind: str) -> dict:
    if kind == "msp-podcast":
        return {"split": args.split, "version": args.release}
    if kind == "csv":
        columns = {dim: getattr(args, f"{dim}_column") for dim in LABELS}
        return {"file_column": args.file_column, "columns": columns, "scale": args.scale}
    return {"target": args.target, "views": args.view, "allow_outside_paths": args.allow_outside_paths}


def run(args) -> int:
    import warnings

    from ..corpora import corpus_kind, open_corpus
    from ..evaluate import evaluate

    kind = corpus_kind(args.corpus) if args.kind == "auto" else args.kind
    corpus = open_corpus(args.corpus, kind=kind, **_reader_options(args, kind))
    if corpus.info.get("version") == "unknown":
        print(f"note: no release in the folder name {args.corpus}; pass --release (in the recipe: "
              f"--evaluate-opts \"--release 1.11\") to record it", file=sys.stderr)
    if corpus.info.get("caveat"):
        print(f"note: {corpus.info['caveat']}", file=sys.stderr)
    if corpus.info.get("n_unrated"):
        print(f"note: {corpus.info['n_unrated']} rows without ratings are left out of the metrics", file=sys.stderr)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = evaluate(corpus, args.model, batch_size=args.batch_size, device=args.device, n_bootstrap=args.bootstrap,
                          seed=args.seed, limit=args.limit, progress=True)
    for warning in caught:
        if issubclass(warning.category, UserWarning):
            print(f"warning: {warning.message}", file=sys.stderr)
    paths = result.save(args.output_dir)
    counts = result.report["counts"]
    print(f"{corpus.name}: {counts['n_evaluated']} of {counts['n_listed']} clips evaluated "
          f"({counts['n_missing']} missing, {counts['n_unreadable']} unreadable); report in {paths['markdown']}", file=sys.stderr)
    markdown = result.markdown()
    print(markdown[markdown.index("## CCC") : markdown.index("## Pearson")].strip())
    return 0
