"""How long the `wav2small` command takes to answer `--help`, against importing torch alone.

    python bench/help_latency.py --repeats 5

Each measurement is a fresh process (what a user waits for): `wav2small --help`, `wav2small train
--help`, `python -c "import wav2small"` and, for scale, `python -c "import torch"`, median of
--repeats runs. The ratio to the torch import transfers between machines; the seconds do not
(they depend on the CPU, the disk cache and the load, which are printed).
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path


def cpu_name() -> str:
    try:
        return re.search(r"^model name\s*:\s*(.*)$", Path("/proc/cpuinfo").read_text(), re.M).group(1)
    except (OSError, AttributeError):
        return platform.processor() or "unknown CPU"


def seconds(command: list[str], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5, help="runs per command (median) (default: %(default)s)")
    args = parser.parse_args()
    python = sys.executable
    commands = {
        "wav2small --help": [python, "-m", "wav2small", "--help"],
        "wav2small train --help": [python, "-m", "wav2small", "train", "--help"],
        "import wav2small": [python, "-c", "import wav2small"],
        "import torch": [python, "-c", "import torch"],
    }
    seconds(commands["import torch"], 1)  # warm the disk cache first
    print(f"{cpu_name()}, {os.cpu_count()} cores, load {' / '.join(f'{x:.1f}' for x in os.getloadavg())}, "
          f"median of {args.repeats} fresh processes")
    results = {name: seconds(command, args.repeats) for name, command in commands.items()}
    for name, value in results.items():
        print(f"  {name:24s} {value:6.2f} s   {value / results['import torch']:.2f} x import torch")
    print(f"load after: {' / '.join(f'{x:.1f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
