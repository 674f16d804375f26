"""Predict arousal, dominance and valence for audio files.

Writes one row per file (or per window with --win-dur) with columns
file, start, end (seconds), arousal, dominance, valence (nominally 0..1, unclipped).
Bad files are reported on stderr and skipped; the rest are processed.

example:
  wav2small predict speech/*.wav --model audeering/wav2small --win-dur 4 --output adv.csv
"""

from __future__ import annotations

import sys

HELP = "A/D/V for audio files with a student, teacher or ONNX model"


def add_arguments(parser):
    parser.add_argument("files", nargs="+", help="audio files (WAV, FLAC, OGG, MP3, ...)")
    parser.add_argument("--model", default="audeering/wav2small", help="hub id, model/export folder or .onnx file (default: %(default)s)")
    parser.add_argument("--win-dur", type=float, help="window length in seconds for long audio (default: whole file)")
    parser.add_argument("--hop-dur", type=float, help="hop between windows in seconds (default: win-dur / 2)")
    parser.add_argument("--batch-size", type=int, default=16, help="windows per forward pass (default: %(default)s)")
    parser.add_argument("--device", default="cpu", help="cpu or cuda (default: %(default)s)")
    parser.add_argument("--output", "-o", help="CSV file to write (default: print to stdout)")


def run(args) -> int:
    import warnings

    from ..predict import predict

    with warnings.catch_warnings(record=True):
        warnings.simplefilter("ignore")
        frame = predict(
            args.files, model=args.model, win_dur=args.win_dur, hop_dur=args.hop_dur,
            batch_size=args.batch_size, device=args.device, on_error="skip", progress=len(args.files) > 1,
        )
    failed = frame.attrs.get("failed", {})
    for file, problem in failed.items():
        print(f"skipped {file}: {problem}", file=sys.stderr)
    table = frame.reset_index()
    table["start"] = table["start"].dt.total_seconds()
    table["end"] = table["end"].dt.total_seconds()
    if args.output:
        table.to_csv(args.output, index=False, float_format="%.6f")
        print(f"wrote {len(table)} rows for {len(args.files) - len(failed)} files to {args.output}"
              + (f"; {len(failed)} skipped" if failed else ""), file=sys.stderr)
    else:
        table.to_csv(sys.stdout, index=False, float_format="%.6f")
    return 1 if failed and not len(table) else 0
