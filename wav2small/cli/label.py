"""Label audio with a teacher: A/D/V per fixed-length crop (and per augmented view) into a label store.

Writes DIR/metadata.json and Parquet shards with one row per (file, start, end, view): the combined
teacher output (arousal, dominance, valence, nominally 0..1, unclipped) and each member's output.
Run the same command again to resume: finished clips are skipped, nothing is labelled twice.
Scale out with `--shard i/N` (or under torchrun, which sets RANK / WORLD_SIZE): each process labels
its own slice of the input into the same DIR. Unreadable files are listed in the store's errors.

examples:
  wav2small label MSP-PODCAST/Audios --teacher dawn+odyssey --out labels/msp --crop-dur 4 --views 4 --device cuda
  wav2small label manifest.csv --teacher runs/tiny/dawn --out labels/smoke --shard 0/2
  wav2small label Audios --teacher dawn+odyssey --out labels/aug --views 8 --mixup-prob 0.5 --reverb-prob 0.3 --rir-dir rirs/
  torchrun --nproc_per_node=8 -m wav2small label Audios --teacher dawn+odyssey --out labels/msp --device cuda
"""

from __future__ import annotations

import sys

HELP = "label audio with a teacher (Dawn, Odyssey, ensembles) into a resumable label store"


def add_arguments(parser):
    from ..options import LabelConfig, ViewSettings, add_options

    parser.add_argument("inputs", nargs="+", metavar="INPUT",
                        help="audio folder (recursive), audio files, CSV manifest (file[,start,end] in seconds) or .txt list")
    parser.add_argument("--teacher", default="dawn+odyssey",
                        help="'dawn', 'odyssey', hub id, folder, or several joined by '+' (default: %(default)s)")
    parser.add_argument("--out", required=True, help="label store directory (created, or resumed)")
    add_options(parser, LabelConfig)  # one flag per field of LabelConfig
    add_options(parser.add_argument_group("views (with --views N: how the augmented views are drawn)"), ViewSettings)


def run(args) -> int:
    from ..labels import label_audio
    from ..options import LabelConfig, ViewSettings, options_from_arguments
    from ..store import LabelStore

    summary = label_audio(args.inputs, args.teacher, args.out, view_settings=ViewSettings(**options_from_arguments(ViewSettings, args)),
                          **options_from_arguments(LabelConfig, args))
    where = f" (shard {summary['rank']}/{summary['world']})" if summary["world"] > 1 else ""
    print(f"labelled {summary['clips']} clips ({summary['rows']} rows) in {summary['seconds']:.1f} s, "
          f"{summary['clips_per_s']:.2f} clips/s{where}; {summary['skipped']} already done", file=sys.stderr)
    print(f"store {args.out}: {summary['store_rows']} rows", file=sys.stderr)
    if summary["errors"]:
        errors = LabelStore(args.out).errors()
        print(f"{len(errors)} files could not be labelled (LabelStore('{args.out}').errors()), e.g.:", file=sys.stderr)
        for row in errors.head(5).itertuples():
            print(f"  {row.file}: {row.reason}", file=sys.stderr)
    return 0 if summary["clips"] or summary["skipped"] else 1
