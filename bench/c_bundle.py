"""The C bundle of the streaming int8 presets on an emulated Cortex-M4F: flash, RAM and
instructions per second of audio, and the clock a Cortex-M4 needs for real time.

    python bench/c_bundle.py [--presets wav2small wav2small-72k] [--out bench/results]

For every preset: a student with the running prenorm (untrained weights: sizes and instruction
counts do not depend on the values), exported with --streaming --int8 --activations all and 7-bit
weights (calibrated on speech-like test clips), then ``export_c``: the bundle is compiled with
arm-none-eabi-gcc for -mcpu=cortex-m4 -mfpu=fpv4-sp-d16 -mfloat-abi=hard and run on QEMU's
mps2-an386 board with -icount shift=0 (one instruction per ns of virtual time, read through
SysTick) while 2.048 s of a speech-like test signal stream through. Flash and static RAM come
from a bare firmware image (no C library); the stack peak is measured by painting it. Goals (issue 14, the card model): flash <= 48 KB, RAM <= 32 KB, <= 2
instructions per multiply-accumulate (real time at about 130 MHz). Prints a Markdown table and
writes it, with the JSON, to --out. bench/c_layer.py compares one layer's kernel with plain C.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
from pathlib import Path

import torch

from wav2small import create_student, export_onnx
from wav2small.export.c import export_c
from wav2small.testing import write_audio_dir

GOALS = {"wav2small": {"flash_bytes": 48 * 1024, "ram_bytes": 32 * 1024, "instructions_per_mac": 2.0}}


def measure(preset: str, folder: Path) -> dict:
    torch.manual_seed(0)
    audio = write_audio_dir(folder / "speech", 24, seed=3)
    export_onnx(create_student(preset, prenorm="running"), folder / preset, int8=True, calibration=audio, streaming=True,
                activations="all", reduce_range=True, clip_seconds=1.0, max_clips=48, min_pearson=0, min_ccc=-1)
    report = export_c(folder / preset, folder / preset / "c")
    if "skipped" in report["device"]:
        raise SystemExit(report["device"]["skipped"])
    return {"preset": preset, **report["device"], "exactness": report["exactness"]}


def table(rows) -> str:
    lines = ["| preset | flash | RAM (static + stack) | state | M instructions / s of audio | M MAC / s | per MAC | "
             "real time at | C vs onnxruntime |", "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        e = r["exactness"]
        lines.append(f"| {r['preset']} | {r['flash_bytes'] / 1024:.1f} KiB | {r['ram_bytes'] / 1024:.1f} KiB "
                     f"({r['static_ram_bytes'] / 1024:.1f} + {r['peak_stack_bytes'] / 1024:.1f}) | {r['state_bytes'] / 1024:.1f} KiB | "
                     f"{r['instructions_per_second'] / 1e6:.1f} | {r['macs_per_second'] / 1e6:.1f} | {r['instructions_per_mac']:.2f} | "
                     f"{r['real_time_mhz']:.0f} MHz | {e['identical_results']}/{e['results']} identical |")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--presets", nargs="+", default=["wav2small", "wav2small-72k"])
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        rows = [measure(p, Path(tmp)) for p in args.presets]
    text = (f"# bench/c_bundle.py ({platform.machine()} host, load average {os.getloadavg()[0]:.1f}: sizes, instruction "
            "counts and exactness do not depend on the host or its load)\n\n" + table(rows)
            + "\n\nQEMU 7.2, arm-none-eabi-gcc 12 -O2; " + rows[0]["note"] + ".\n")
    for r in rows:
        for key, goal in GOALS.get(r["preset"], {}).items():
            text += f"\n{r['preset']}: {key} {r[key]:,} (goal <= {goal:,}): {'met' if r[key] <= goal else 'missed'}"
    print(text)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "c_bundle.md").write_text(text + "\n")
    (args.out / "c_bundle.json").write_text(json.dumps(rows, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
