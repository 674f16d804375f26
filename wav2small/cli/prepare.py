"""Stage 0: list the audio to distil on, as a manifest CSV (file, duration in seconds).

SOURCE is a folder of audio (WAV, FLAC, OGG, MP3; searched recursively) or an MSP-Podcast root
(Audios/ + Labels/labels_consensus.csv), of which --splits are taken. Files whose header cannot
be read are listed with the reason in OUT's .errors.csv and left out. The manifest is the input
of `wav2small label`.

example:
  wav2small prepare /data/MSP-PODCAST-1.11 --splits Train --out exp/manifest.csv
"""

from __future__ import annotations

HELP = "write the manifest of clips to label, from an audio folder or an MSP-Podcast root"


def add_arguments(parser):
    parser.add_argument("source", help="audio folder or MSP-Podcast root")
    parser.add_argument("--out", required=True, help="manifest CSV to write")
    parser.add_argument("--splits", default="Train", help="MSP-Podcast splits, comma-separated (default: %(default)s)")


def run(args) -> int:
    from ..manifest import write_manifest

    manifest, errors = write_manifest(args.source, args.out, splits=[s.strip() for s in args.splits.split(",") if s.strip()])
    hours = manifest["duration"].sum() / 3600
    print(f"manifest {args.out}: {len(manifest)} files, {hours:.2f} h" + (f"; {len(errors)} unreadable (see .errors.csv)" if len(errors) else ""))
    return 0 if len(manifest) else 1
