"""Label audio with a teacher: A/D/V per fixed-length crop (and per augmented view) into a label store.

Writes DIR/metadata.json and Parquet shards with one row per (file, start, end, view): the combined
teacher output (arousal, dominance, valence, nominally 0..1, unclipped) and each member's output.
Run the same command again to resume: finished clips are skipped, nothing is labelled twice.
Scale out with `--shard i/N` (or under torchrun, which sets RANK / WORLD_SIZE): each process labels
its own slice of the input into the same DIR. Unreadable files are listed in the store's errors.

examples:
  wav2small label MSP-PODCAST/Audios --teacher dawn+odyssey --out labels/msp --crop-dur 4 --views 4 --device cuda
  wav2small label manifest.csv --teacher runs/tiny/dawn --out labels/smoke --shard 0/2
  torchrun --nproc_per_node=8 -m wav2small label Audios --teacher dawn+odyssey --out labels/msp --device cuda
"""

from __future__ import annotations

import sys

HELP = "label audio with a teacher (Dawn, Odyssey, ensembles) into a resumable label store"


def add_arguments(parser):
    parser.add_argument("inputs", nargs="+", metavar="INPUT",
                        help="audio folder (recursive), audio files, CSV manifest (file[,start,end] in seconds) or .txt list")
    parser.add_argument("--teacher", default="dawn+odyssey",
                        help="'dawn', 'odyssey', hub id, folder, or several joined by '+' (default: %(default)s)")
    parser.add_argument("--weights", help="ensemble weights, comma separated (default: equal)")
    parser.add_argument("--out", required=True, help="label store directory (created, or resumed)")
    parser.add_argument("--crop-dur", type=float, default=4.0, help="seconds per clip; shorter files are labelled whole (default: %(default)s)")
    parser.add_argument("--views", type=int, default=0, help="augmented views per clip besides the clean crop (default: %(default)s)")
    parser.add_argument("--noise-dir", help="folder of noise files for the views (default: generated white/pink/brown noise)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the views (default: %(default)s)")
    parser.add_argument("--batch-size", type=int, default=16, help="clips per forward pass (default: %(default)s)")
    parser.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N (default: %(default)s)")
    parser.add_argument("--fp32", action="store_true", help="full precision on GPU (default there: half precision)")
    parser.add_argument("--shard", help="label only slice i of N, as i/N (default: RANK/WORLD_SIZE from torchrun, else all)")
    parser.add_argument("--shard-size", type=int, default=256, help="clips per Parquet shard (default: %(default)s)")
    parser.add_argument("--workers", type=int, default=2, help="threads reading audio ahead of the teacher (default: %(default)s)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def run(args) -> int:
    from ..labels import label_audio
    from ..store import LabelStore

    weights = [float(w) for w in args.weights.split(",")] if args.weights else None
    summary = label_audio(
        args.inputs, args.teacher, args.out, crop_dur=args.crop_dur, views=args.views, noise_dir=args.noise_dir,
        seed=args.seed, batch_size=args.batch_size, device=args.device, half=False if args.fp32 else None,
        shard=args.shard, shard_size=args.shard_size, workers=args.workers, weights=weights, progress=not args.quiet,
    )
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
