"""Export a student to fp32 / int8 ONNX with parity checks and footprint reports (the same as
``wav2small export``; run ``python export/export_onnx.py --help``)."""

import sys

from wav2small.cli import main

if __name__ == "__main__":
    sys.exit(main(["export", *sys.argv[1:]]))
