"""Evaluate models on MSP-Podcast: CCC per dimension with bootstrap intervals, report and plots.

Same options as `wav2small evaluate` with the corpus read as MSP-Podcast, e.g.
  python eval/msp_podcast.py /data/MSP-PODCAST-1.11 --split Test1 --model runs/w2s/best --model audeering/wav2small -o results/test1
"""

import sys

from wav2small.cli import main

if __name__ == "__main__":
    sys.exit(main(["evaluate", "--kind", "msp-podcast", *sys.argv[1:]]))
