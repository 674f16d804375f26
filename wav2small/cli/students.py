"""List the student presets that `wav2small train --student NAME` accepts, with their sizes.

parameters: trainable values. state values: everything in model.safetensors (trainable, frozen
conv-DFT front-end, mel matrix, BatchNorm statistics). front-end: n_fft / hop in samples at 16 kHz.

example:
  wav2small students
"""

from __future__ import annotations

HELP = "list student presets (names, parameter counts, front-end settings)"


def add_arguments(parser):
    pass


def run(args) -> int:
    from ..models.registry import list_students

    print(f"{'name':<26}{'architecture':<17}{'parameters':>12}{'state values':>14}  front-end")
    for name, row in list_students(with_sizes=True).iterrows():
        frontend = f"n_fft {row.n_fft}, hop {row.hop}, {row.n_mels} mels"
        print(f"{name:<26}{row.architecture:<17}{row.parameters:>12,}{row.state_values:>14,}  {frontend}")
    return 0
