"""Save a tiny RANDOM teacher (2 layers, hidden size 32) in the published Dawn or Odyssey folder format.

Its outputs are meaningless: it exists so that the labelling, training and export pipeline can be
smoke-tested end to end without downloading the real teachers. Never distil from it.

example:
  wav2small make-tiny-teacher runs/tiny --kind both
  wav2small label audio/ --teacher runs/tiny/dawn+runs/tiny/odyssey --out runs/tiny-labels --crop-dur 2
"""

from __future__ import annotations

import sys
from pathlib import Path

HELP = "save a tiny random teacher (smoke tests only, meaningless outputs)"


def add_arguments(parser):
    parser.add_argument("directory", help="where to write it (with --kind both: DIR/dawn and DIR/odyssey)")
    parser.add_argument("--kind", choices=("dawn", "odyssey", "both"), default="dawn", help="published format to mimic (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random weights (default: %(default)s)")


def run(args) -> int:
    from ..testing import save_tiny_teacher

    root = Path(args.directory)
    if args.kind == "both":
        folders = [save_tiny_teacher(root / kind, kind, seed=args.seed + i) for i, kind in enumerate(("dawn", "odyssey"))]
        spec = "+".join(str(f) for f in folders)
    else:
        folders = [save_tiny_teacher(root, args.kind, seed=args.seed)]
        spec = str(folders[0])
    banner = "!" * 78
    print(banner, file=sys.stderr)
    print("!! TINY RANDOM TEACHER: its A/D/V outputs are MEANINGLESS. Use it for smoke runs of", file=sys.stderr)
    print("!! the pipeline only; never distil a student you intend to use from it.", file=sys.stderr)
    print(banner, file=sys.stderr)
    for folder in folders:
        print(f"wrote {folder}", file=sys.stderr)
    print(f"use it with: --teacher {spec}", file=sys.stderr)
    return 0
