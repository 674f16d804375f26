"""Search for the student that keeps the most of the teacher at the cost your device can afford
(MnasNet's method: measure on the target, trade fidelity against cost with a soft reward).

Each candidate (a preset with settings from --space) is distilled for the same budget (--steps,
--batch-size, --lr, --seed) on STORE, exported to fp32 and int8 ONNX (calibrated on STORE),
timed on this machine (onnxruntime, batch 1, 5 s of audio, --latency-threads threads) and
scored on --test-store, the teacher's labels of audio no candidate trains on (the recipe's
labels_test). The card model (wav2small) is always measured first, as the reference.

  fidelity = mean CCC of the int8 model with the teacher on --test-store (arousal, dominance, valence)
  cost     = int8-ms (default: int8 latency), fp32-ms, or macs (M multiply-accumulates per second
             of audio: exact and the same on every machine, a proxy for a microcontroller)
  reward   = fidelity x (cost / target) ^ w,  w = --exponent (MnasNet's -0.07)

so a candidate at half the target's cost earns 5 % more reward for the same fidelity. The
default target is the reference's cost. The default space: Wav2Small channels 6-13, 20 or 26
mels, frames of 64 or 128 samples with hops of 32-128, depth 5 or 7, the pool after block 1 or 3;
MobileNetV3-small at width 0.25 or 0.5 with 32 or 64 mels. --space takes a JSON file (or text)
of the same shape: {"PRESET": {"OPTION": [VALUES, ...]}}; the candidates are the reference and
then the space's combinations in a seeded random order; --candidates sets how many are measured.

Progress is printed as each candidate ends. A killed search resumes where it stopped when run
again with the same settings (finished candidates are kept in OUT/results.jsonl; the one that
was running resumes its training from its checkpoint). A candidate that fails is recorded and
the search goes on. OUT receives results.csv (every candidate), pareto.md (the candidates no other
beats on both fidelity and cost) and best/ (the best reward's model folder; best/export/ holds its
ONNX files).

example (after stages 0-1 of recipes/distill.sh):
  wav2small search exp/w2s/labels --test-store exp/w2s/labels_test --out exp/search --candidates 16 --steps 2000
  wav2small search exp/w2s/labels --test-store exp/w2s/labels_test --out exp/search-mcu --cost macs --target 10
"""

from __future__ import annotations

import json
from pathlib import Path

HELP = "latency-aware search for a student: distil, export, time and score candidates (MnasNet's reward)"


def add_arguments(parser):
    from ..options import SearchConfig, add_options

    add_options(parser, SearchConfig)  # one flag per field of SearchConfig
    parser.add_argument("--space", help="JSON file or text {PRESET: {OPTION: [VALUES]}} (default: the space described above)")


def read_space(text: str | None) -> dict | None:
    """The --space argument: None (the default space), or a JSON file or JSON text of the shape
    {preset: {option: [values]}}; ValueError naming the file or the text's problem."""
    if text is None:
        return None
    path = Path(text)
    source = path.read_text() if path.is_file() else text
    where = f"--space file {path}" if path.is_file() else "--space"
    try:
        space = json.loads(source)
    except json.JSONDecodeError as error:
        raise ValueError(f"{where}: not JSON ({error})") from None
    if not isinstance(space, dict) or not space or not all(
            isinstance(v, dict) and all(isinstance(x, list) and x for x in v.values()) for v in space.values()):
        raise ValueError(f'{where}: expected {{"PRESET": {{"OPTION": [VALUES, ...]}}}}, e.g. {{"wav2small": {{"channels": [8, 13]}}}}')
    return space


def run(args) -> int:
    from ..options import SearchConfig, options_from_arguments
    from ..search import search

    config = SearchConfig(**options_from_arguments(SearchConfig, args), space=read_space(args.space))
    frame = search(config)
    out = Path(config.out)
    if frame.empty:
        print("no candidate could be measured; see the errors in", out / "results.jsonl")
        return 1
    if config.progress:
        best = frame.iloc[0]
        print(f"best: {best['key']} (reward {best['reward']:.4f}, int8 fidelity {best['int8_fidelity']:.3f}, "
              f"{best['int8_ms']:.2f} ms int8, {best['mmacs_per_second']:.1f} M MAC/s); model in {out / 'best'}, "
              f"Pareto front in {out / 'pareto.md'}")
    return 0
