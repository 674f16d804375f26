"""The settings of the package's jobs as dataclasses: one field, one option, with its comment.

Nothing here imports torch or any other heavy module, so the command line can build its flags
from these classes (and answer ``--help``) at once; the jobs themselves live in their modules
(``train.py`` runs a :class:`TrainConfig`).
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class TrainConfig:
    """Settings of a training run (saved as the run's config.json).

    store: label store folder. out: run directory. student: preset name (``wav2small students``)
    or a model folder / hub id to start from. student_options: config overrides of a preset
    (e.g. {"channels": 20}). target: "combined" (the store's arousal, dominance, valence) or a
    teacher member name (its ``<member>.*`` columns).
    steps: optimizer steps in all. batch_size: clips per step and process (DDP multiplies it).
    lr: peak learning rate of AdamW, reached after ``warmup_steps`` linear steps (None = 5 % of
    ``steps``), then cosine decay to ``lr * min_lr_ratio`` at the last step. weight_decay: AdamW decay of weight
    matrices and kernels (not of biases and norms). grad_clip: largest global gradient norm
    (0 = off). ccc_weight: loss = (1 - w) * MSE + w * (1 - CCC over the batch), averaged over
    the three dimensions; 0 is plain MSE, 1 plain CCC. ema_decay: exponential moving average of
    the weights (0 = off, e.g. 0.999); when on, validation and the saved models use it.
    valid_fraction: share of files (never clips of a file) held out for validation, chosen by
    :func:`wav2small.holdout.held_out`. valid_limit: at most this many held-out rows per validation (0 = all).
    valid_every: steps between validations and checkpoints (None = steps / 5, at most 1000: a
    short run still validates five times, so best/ is chosen among several). valid_fraction 0
    holds nothing out: no validation, and only last/ is written. seed: initialisation, data
    order and dropout. workers: DataLoader processes rendering views; None = 0 on CPU (rendering in the
    training process costs a few % of a step, a worker process competing with the training
    threads for the cores costs more) and 4 on GPU.
    threads: torch CPU threads (None = torch's default). cache_dir: where the packed audio cache
    lives (default: ``<store>/audio-cache``), cache_dtype: "float32" or "int16". device: "cpu" or
    "cuda" (under torchrun: cuda:LOCAL_RANK). compile: torch.compile the student: 1.3-1.7x
    faster wav2small steps on CPU after a compile of about 20 s (80 s for a MobileNet), but every
    new clip length compiles again (after 8, the rest run uncompiled; inductor in torch 2.13
    fails on a dynamic length): for stores of fixed-length crops.
    allow_outside_paths: read store rows whose audio lies outside the folders the store was
    labelled from (refused by default: a store is data from disk and must not point anywhere).
    progress: show a progress bar.
    """

    store: str
    out: str
    student: str = "wav2small"
    student_options: dict = field(default_factory=dict)
    target: str = "combined"
    steps: int = 20000
    batch_size: int = 16
    lr: float = 2e-3
    warmup_steps: int | None = None
    min_lr_ratio: float = 0.05
    weight_decay: float = 0.01
    grad_clip: float = 1.0
    ccc_weight: float = 0.5
    ema_decay: float = 0.0
    valid_fraction: float = 0.1
    valid_limit: int = 5000
    valid_every: int | None = None
    seed: int = 0
    workers: int | None = None
    threads: int | None = None
    cache_dir: str | None = None
    cache_dtype: str = "float32"
    device: str = "cpu"
    compile: bool = False
    allow_outside_paths: bool = False
    progress: bool = True

    def __post_init__(self):
        if self.steps < 1 or (self.valid_every is not None and self.valid_every < 1) or (self.warmup_steps or 0) < 0:
            raise ValueError("steps and valid_every must be positive, warmup_steps >= 0")
        if self.batch_size < 2:
            raise ValueError(f"batch_size must be at least 2 (BatchNorm and the CCC loss need batch statistics), got {self.batch_size}")
        if not 0 <= self.ccc_weight <= 1:
            raise ValueError(f"ccc_weight must be in [0, 1] (0 = MSE, 1 = 1 - CCC), got {self.ccc_weight}")
        if not 0 <= self.ema_decay < 1:
            raise ValueError(f"ema_decay must be in [0, 1), got {self.ema_decay}")
        if self.lr <= 0:
            raise ValueError(f"lr must be positive, got {self.lr}")
        if not 0 <= self.valid_fraction < 1:
            raise ValueError(f"valid_fraction must be in [0, 1), got {self.valid_fraction}")

    @property
    def validation_interval(self) -> int:
        """Steps between validations: ``valid_every``, or by default a fifth of the run, at most 1000."""
        return self.valid_every or min(1000, max(1, self.steps // 5))
