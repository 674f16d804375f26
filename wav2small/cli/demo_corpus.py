"""Synthesise a small speech corpus with espeak-ng for smoke runs (needs the espeak-ng program).

Writes DIR/Audios/*.wav (16 kHz mono) and DIR/Labels/labels_consensus.csv in the MSP-Podcast
layout (EmoAct/EmoDom/EmoVal on 1..7, SpkrID, Gender, Split_Set Train/Development/Test1).
Voices, pitch, rate and amplitude vary per clip. The ratings are rule-based proxies from those
synthesis settings, not human judgements: use the corpus to try the pipeline, never to report results.

example:
  wav2small demo-corpus data/demo --clips 300
"""

from __future__ import annotations

HELP = "make a small espeak-ng speech corpus (MSP-Podcast layout) for smoke runs"


def add_arguments(parser):
    parser.add_argument("directory", help="output folder (created; existing clips are kept)")
    parser.add_argument("--clips", type=int, default=200, help="number of utterances (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=0, help="random seed for voices and settings (default: %(default)s)")


def run(args) -> int:
    from ..demo_corpus import make_demo_corpus

    folder = make_demo_corpus(args.directory, n_clips=args.clips, seed=args.seed)
    print(f"wrote {args.clips} clips to {folder}/Audios and proxy ratings (not human labels) to {folder}/Labels/labels_consensus.csv")
    return 0
