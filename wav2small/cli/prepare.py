"""Stage 0: list the audio to distil on (train.csv) and the audio held out for the final test
(test.csv), each with columns file, duration (seconds); unreadable files go to errors.csv.

SOURCE is a folder of audio (WAV, FLAC, OGG, MP3; searched recursively; --test-fraction of the
files, picked by a hash of the file name (wav2small.holdout), are held out) or an MSP-Podcast root (Audios/ +
Labels/labels_consensus.csv; train = --splits, test = --test-split). The CSVs are inputs of
`wav2small label`.

example:
  wav2small prepare /data/MSP-PODCAST-1.11 --splits Train --test-split Test1 --out exp/data
"""

from __future__ import annotations

HELP = "split an audio folder or MSP-Podcast root into train/test manifests"


def add_arguments(parser):
    parser.add_argument("source", help="audio folder or MSP-Podcast root")
    parser.add_argument("--out", required=True, help="folder for train.csv, test.csv, errors.csv")
    parser.add_argument("--splits", default="Train", help="MSP-Podcast splits to train on, comma-separated (default: %(default)s)")
    parser.add_argument("--test-split", default="Test1", help="MSP-Podcast split held out for testing (default: %(default)s)")
    parser.add_argument("--test-fraction", type=float, default=0.1, help="share of an audio folder held out (default: %(default)s)")


def run(args) -> int:
    from ..prepare import write_manifests

    tables = write_manifests(args.source, args.out, splits=[s.strip() for s in args.splits.split(",") if s.strip()],
                             test_split=args.test_split, test_fraction=args.test_fraction)
    for part in ("train", "test"):
        print(f"{args.out}/{part}.csv: {len(tables[part])} files, {tables[part]['duration'].sum() / 3600:.2f} h")
    if len(tables["errors"]):
        print(f"{len(tables['errors'])} unreadable files left out: see {args.out}/errors.csv")
    return 0
