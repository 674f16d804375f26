"""Train a student on a label store's teacher outputs (distillation), on CPU or GPU, one process or DDP.

Every labelled view (crop, gain, mixing or MixUp, reverberation, noise) is rebuilt exactly as the
teacher heard it, from a packed audio cache built once per store (default STORE/audio-cache).
Targets are the teacher's arousal, dominance, valence (nominally 0..1): the ensemble's combined
output, or one loss term per member (--member-weight), each optionally paired with the teacher's
output on the clean crop of the view's clip (--clean-target-weight). The run directory gets config.json, log.csv (every
step's loss, every validation's CCC per dimension and mean), state/, and the model folders
best/ (highest mean validation CCC; none with --valid-fraction 0) and last/, loadable by predict,
evaluate and export.
Run the same command again to resume an interrupted run; it continues the same run.

examples:
  wav2small train labels/msp --out runs/w2s --student wav2small --steps 50000
  wav2small train labels/msp --out runs/mnv4 --student mobilenetv4-conv-small --device cuda --batch-size 64
  wav2small train labels/msp --out runs/w2s20 --student wav2small --student-option channels=20 --ema-decay 0.999
  wav2small train labels/msp --out runs/w2s-pm --member-weight dawn=1 --member-weight odyssey=0.5 --clean-target-weight 0.5
  torchrun --nproc_per_node=4 -m wav2small train labels/msp --out runs/w2s --steps 50000
"""

from __future__ import annotations

HELP = "train a student on a label store (distillation), resumable, DDP under torchrun"


def add_arguments(parser):
    from ..options import TrainConfig, add_options

    add_options(parser, TrainConfig)  # one flag per field of TrainConfig
    parser.add_argument("--convert-state", action="store_true",  # an action of the command, not a setting of the run
                        help="convert the pickled state.pt of a run made by an older wav2small (tensors and numbers only) and resume")


def run(args) -> int:
    from ..options import TrainConfig, options_from_arguments
    from ..train import convert_pickled_state, train

    config = TrainConfig(**options_from_arguments(TrainConfig, args))
    if args.convert_state:
        print(f"converted to {convert_pickled_state(args.out)}")
    train(config)
    return 0
