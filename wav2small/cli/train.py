"""Train a student on a label store's teacher outputs (distillation), on CPU or GPU, one process or DDP.

Every labelled view (crop, gain, mixing, noise) is rebuilt exactly as the teacher heard it, from a
packed audio cache built once per store (default STORE/audio-cache). Targets are the teacher's
arousal, dominance, valence (nominally 0..1). The run directory gets config.json, log.csv (every
step's loss, every validation's CCC per dimension and mean), state/, and the model folders
best/ (highest mean validation CCC; none with --valid-fraction 0) and last/, loadable by predict,
evaluate and export.
Run the same command again to resume an interrupted run; it continues the same run.

examples:
  wav2small train labels/msp --out runs/w2s --student wav2small --steps 50000
  wav2small train labels/msp --out runs/mnv4 --student mobilenetv4-conv-small --device cuda --batch-size 64
  wav2small train labels/msp --out runs/w2s20 --student wav2small --student-option channels=20 --ema-decay 0.999
  torchrun --nproc_per_node=4 -m wav2small train labels/msp --out runs/w2s --steps 50000
"""

from __future__ import annotations

import json

HELP = "train a student on a label store (distillation), resumable, DDP under torchrun"


def _option(text: str):
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise ValueError(f"--student-option needs KEY=VALUE, got {text!r}")
    try:
        return key, json.loads(value)
    except json.JSONDecodeError:
        return key, value


def add_arguments(parser):
    from ..options import TrainConfig

    d = TrainConfig(store="", out="")
    parser.add_argument("store", help="label store folder (from `wav2small label`)")
    parser.add_argument("--out", required=True, help="run directory (created; resumed when it holds a run of the same settings)")
    parser.add_argument("--student", default=d.student,
                        help="preset name (see `wav2small students`) or a model folder / hub id to start from (default: %(default)s)")
    parser.add_argument("--student-option", action="append", default=[], metavar="KEY=VALUE",
                        help="override a preset's config field, e.g. channels=20 or n_mels=40 (repeatable)")
    parser.add_argument("--target", default=d.target, help="'combined' or a teacher member name of the store (default: %(default)s)")
    parser.add_argument("--steps", type=int, default=d.steps, help="optimizer steps (default: %(default)s)")
    parser.add_argument("--batch-size", type=int, default=d.batch_size, help="clips per step and process (default: %(default)s)")
    parser.add_argument("--lr", type=float, default=d.lr, help="peak AdamW learning rate (default: %(default)s)")
    parser.add_argument("--warmup-steps", type=int, help="linear warm-up steps (default: 5%% of --steps)")
    parser.add_argument("--min-lr-ratio", type=float, default=d.min_lr_ratio, help="final lr / peak lr of the cosine decay (default: %(default)s)")
    parser.add_argument("--weight-decay", type=float, default=d.weight_decay, help="AdamW weight decay of kernels (default: %(default)s)")
    parser.add_argument("--grad-clip", type=float, default=d.grad_clip, help="max gradient norm, 0 = off (default: %(default)s)")
    parser.add_argument("--ccc-weight", type=float, default=d.ccc_weight,
                        help="loss = (1-w) MSE + w (1 - CCC); 0 = MSE, 1 = CCC (default: %(default)s)")
    parser.add_argument("--ema-decay", type=float, default=d.ema_decay, help="EMA of weights, e.g. 0.999; 0 = off (default: %(default)s)")
    parser.add_argument("--valid-fraction", type=float, default=d.valid_fraction, help="share of files held out (default: %(default)s)")
    parser.add_argument("--valid-limit", type=int, default=d.valid_limit, help="max held-out views per validation, 0 = all (default: %(default)s)")
    parser.add_argument("--valid-every", type=int, default=d.valid_every, help="steps between validations and checkpoints (default: steps / 5, at most 1000)")
    parser.add_argument("--seed", type=int, default=d.seed, help="seed of initialisation, data order and dropout (default: %(default)s)")
    parser.add_argument("--workers", type=int, help="DataLoader processes rendering views (default: 0 on CPU, 4 on GPU)")
    parser.add_argument("--threads", type=int, help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--cache-dir", help="folder of packed audio caches (default: STORE/audio-cache)")
    parser.add_argument("--cache-dtype", choices=("float32", "int16"), default=d.cache_dtype,
                        help="cache samples as float32 (exact) or int16 (half the disk) (default: %(default)s)")
    parser.add_argument("--device", default=d.device, help="cpu or cuda; under torchrun cuda means cuda:LOCAL_RANK (default: %(default)s)")
    parser.add_argument("--compile", action="store_true", help="torch.compile the student: faster steps after a compile, but each new clip length "
                        "compiles again; for stores of fixed-length crops")
    parser.add_argument("--allow-outside-paths", action="store_true",
                        help="read store rows whose audio lies outside the folders the store was labelled from (if you trust the store)")
    parser.add_argument("--convert-state", action="store_true",
                        help="convert the pickled state.pt of a run made by an older wav2small (tensors and numbers only) and resume")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def run(args) -> int:
    from ..options import TrainConfig
    from ..train import convert_pickled_state, train

    config = TrainConfig(
        store=args.store, out=args.out, student=args.student, student_options=dict(map(_option, args.student_option)),
        target=args.target, steps=args.steps, batch_size=args.batch_size, lr=args.lr, warmup_steps=args.warmup_steps,
        min_lr_ratio=args.min_lr_ratio, weight_decay=args.weight_decay, grad_clip=args.grad_clip, ccc_weight=args.ccc_weight,
        ema_decay=args.ema_decay, valid_fraction=args.valid_fraction, valid_limit=args.valid_limit, valid_every=args.valid_every,
        seed=args.seed, workers=args.workers, threads=args.threads, cache_dir=args.cache_dir, cache_dtype=args.cache_dtype,
        device=args.device, compile=args.compile, allow_outside_paths=args.allow_outside_paths, progress=not args.quiet,
    )
    if args.convert_state:
        print(f"converted to {convert_pickled_state(args.out)}")
    train(config)
    return 0
