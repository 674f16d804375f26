"""The settings of the package's jobs (training, labelling, export) as dataclasses: one field, one
option, with its default and, in the comment beside it, its help text. The command-line flags are
generated from the fields (:func:`add_options`), so an option is added by adding a field.

Nothing here imports torch or any other heavy module, so the command line can build its flags
from these classes (and answer ``--help``) at once; the jobs themselves live in their modules
(``train.py`` runs a :class:`TrainConfig`, ``labels.py`` a :class:`LabelConfig`, ``export/`` an
:class:`ExportConfig`, ``search.py`` a :class:`SearchConfig`).

A field's flag is ``--<name with dashes>``; its type and default come from the annotation and the
default, a ``Literal`` gives the choices, and ``metadata`` adjusts the rest: ``positional`` (an
argument, not a flag), ``flag`` (another flag name: ``--quiet`` stores the opposite of
``progress``), ``const`` (what the flag of a ``bool | None`` field stores), ``metavar``, and
``cli=False`` (an API-only setting). The help is the comment on the field's line plus the
comment-only lines right below it.
"""

from __future__ import annotations

import argparse
import dataclasses
import inspect
import io
import json
import math
import re
import textwrap
import tokenize
import types
import typing
from dataclasses import dataclass, field
from typing import Literal

from .contract import SAMPLING_RATE

#: (batch, seconds) of an export's fp32-versus-torch cases; the odd sample count checks the frame arithmetic.
FP32_CHECKS = ((1, 1.0), (2, 5.0), (3, 2.5 + 37 / SAMPLING_RATE), (1, 30.0))


@dataclass
class TrainConfig:
    """Settings of a distillation run (saved as the run's config.json); the comment of each field is
    its ``wav2small train`` help."""

    store: str = field(metadata={"positional": True})  # label store folder (from `wav2small label`)
    out: str  # run directory (created; resumed when it holds a run of the same settings)
    student: str = "wav2small"  # preset name (see `wav2small students`) or a model folder / hub id to start from
    student_options: dict = field(default_factory=dict, metadata={"flag": "--student-option", "metavar": "KEY=VALUE"})
    # config overrides of a preset, e.g. channels=20 or n_mels=40 (repeatable; values are read as JSON)
    target: str = "combined"  # 'combined' (the store's arousal, dominance, valence) or a teacher member name of the store
    steps: int = 20000  # optimizer steps in all
    batch_size: int = 16  # clips per step and process (DDP multiplies it); at least 2: BatchNorm and the CCC loss need batch statistics
    lr: float = 2e-3  # peak AdamW learning rate
    warmup_steps: int | None = None  # linear warm-up steps to the peak lr, then cosine decay (default: 5% of --steps)
    min_lr_ratio: float = 0.05  # final lr / peak lr of the cosine decay
    weight_decay: float = 0.01  # AdamW weight decay of kernels and matrices (not of biases and norms)
    grad_clip: float = 1.0  # largest global gradient norm, 0 = off
    ccc_weight: float = 0.5  # loss = (1 - w) MSE + w (1 - CCC over the batch), mean of the 3 dimensions; 0 = MSE, 1 = CCC
    ema_decay: float = 0.0  # exponential moving average of the weights, e.g. 0.999, 0 = off; when on, validation and the saved models use it
    valid_fraction: float = 0.1  # share of files (never clips of a file) held out for validation (wav2small.holdout);
    # 0 holds nothing out: no validation, and only last/ is written
    valid_limit: int = 5000  # at most this many held-out views per validation, 0 = all
    valid_every: int | None = None  # steps between validations and checkpoints (default: steps / 5, at most 1000: a short
    # run still validates five times, so best/ is chosen among several)
    seed: int = 0  # seed of initialisation, data order and dropout
    workers: int | None = None  # DataLoader processes rendering views (default: 0 on CPU, where a worker competes with training for the cores; 4 on GPU)
    threads: int | None = None  # torch CPU threads (default: torch's choice)
    cache_dir: str | None = None  # folder of packed audio caches (default: STORE/audio-cache)
    cache_dtype: Literal["float32", "int16"] = "float32"  # cache samples as float32 (exact) or int16 (half the disk)
    device: str = "cpu"  # cpu or cuda; under torchrun cuda means cuda:LOCAL_RANK
    compile: bool = False  # torch.compile the student: 1.3-1.7x faster wav2small steps on CPU after a compile of about 20 s
    # (80 s for a MobileNet), but every new clip length compiles again (after 8, the rest run uncompiled): for stores of fixed-length crops
    allow_outside_paths: bool = False  # read store rows whose audio lies outside the folders the store was labelled from
    # (refused by default: a store is data from disk and must not point anywhere; give this if you trust the store)
    progress: bool = field(default=True, metadata={"flag": "--quiet"})  # show a progress bar (--quiet: none)
    member_weights: dict = field(default_factory=dict, metadata={"flag": "--member-weight", "metavar": "MEMBER=WEIGHT"})
    # one loss term per teacher member of the store instead of one on the ensemble's combined output, e.g.
    # --member-weight dawn=1 --member-weight odyssey=0.5 (repeatable; weights normalised to sum 1; default: the combined output)
    clean_target_weight: float = 0.0  # share c of each loss term that scores the student's output on a view against the teacher's
    # output on the clean crop of the same clip, the rest (1 - c) against the teacher's output on the view itself: a teacher
    # that did not hear the augmentation beside one that did (tolerant and tough teachers); 0 = off

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
        if not 0 <= self.clean_target_weight <= 1:
            raise ValueError(f"clean_target_weight must be in [0, 1] (0 = the view's target only), got {self.clean_target_weight}")
        weights = list(self.member_weights.values())
        if weights and not (all(isinstance(w, (int, float)) and not isinstance(w, bool) and 0 <= w < float("inf") for w in weights)
                            and sum(weights) > 0):
            raise ValueError(f"member_weights must be non-negative numbers with a positive sum, got {self.member_weights}")
        if weights and self.target != "combined":
            raise ValueError(f"member_weights and target {self.target!r} both choose the targets: give one of them "
                             f"(target {self.target!r} is member_weights {{{self.target!r}: 1}})")

    @property
    def validation_interval(self) -> int:
        """Steps between validations: ``valid_every``, or by default a fifth of the run, at most 1000."""
        return self.valid_every or min(1000, max(1, self.steps // 5))


@dataclass
class LabelConfig:
    """Options of a labelling job (:func:`wav2small.labels.label_audio`); the comment of each field is
    its ``wav2small label`` help."""

    crop_dur: float = 4.0  # seconds per clip: each file (or manifest segment) gives round(duration / crop_dur) crops of this length; shorter files are labelled whole
    views: int = 0  # augmented views per clip besides the clean crop (view 0)
    noise_dir: str | None = None  # folder of noise files for the views (default: generated white/pink/brown noise)
    rir_dir: str | None = None  # folder of room impulse responses for reverberated views (--reverb-prob; default: synthetic rooms)
    seed: int = 0  # seed of the views; each view's own seed derives from it, the clip and the view index
    batch_size: int = 16  # clips (views) per forward pass; only clips of equal length share one (the teachers' pooling has no padding mask)
    device: str = "cpu"  # cpu, cuda or cuda:N (under torchrun, cuda means cuda:LOCAL_RANK)
    half: bool | None = field(default=None, metadata={"flag": "--fp32", "const": False})  # half precision weights (default: on GPU only; --fp32: full precision there too)
    shard: str | None = None  # label only slice i of N, as i/N (the API also takes an (i, N) tuple) (default: RANK/WORLD_SIZE from torchrun, else all)
    shard_size: int = 256  # clips per Parquet shard (a kill loses at most this much work)
    workers: int = 2  # threads reading and augmenting audio ahead of the teacher
    weights: tuple[float, ...] | None = None  # ensemble weights, comma separated, normalised to sum 1 (default: equal)
    progress: bool = field(default=True, metadata={"flag": "--quiet"})  # show a progress bar with clips/s and ETA (--quiet: none)

    def __post_init__(self):
        if self.crop_dur <= 0 or self.views < 0 or self.batch_size < 1 or self.shard_size < 1:
            raise ValueError("crop_dur, batch_size and shard_size must be positive and views >= 0")


#: The longest reverberation time of a synthetic room response (seconds).
MAX_RT60 = 2.0


@dataclass
class ViewSettings:
    """How the augmented views of a labelling job are drawn (view 0 is always the clean crop); the
    comment of each field is its ``wav2small label`` help. Ranges (low, high) are drawn uniformly.

    A view moves the crop, applies a gain, then mixes in another clip (MixUp with probability
    ``mixup_prob``, else background at an SNR with probability ``mix_prob``), then reverberates
    the result (probability ``reverb_prob``), then adds noise (probability ``noise_prob``). The
    teacher labels the view as heard, MixUp mixtures included (their targets are not mixed).
    """

    gain_db: tuple[float, float] = (-12.0, 6.0)  # range of a view's gain in dB; 0,0 is the gain-free setting, for teachers that
    # hear the recording level (Odyssey): a view then keeps its crop's level (write --gain-db=-6,0 for a negative low end)
    shift: float = 0.5  # largest move of the crop within its file, as a fraction of the crop length
    noise_prob: float = 0.5  # probability that a view gets noise (from --noise-dir, else generated white, pink or brown noise)
    noise_snr_db: tuple[float, float] = (5.0, 30.0)  # range of the noise's SNR in dB
    mix_prob: float = 0.5  # probability that another clip is mixed in as background (when the view is no MixUp)
    mix_snr_db: tuple[float, float] = (3.0, 20.0)  # range of the SNR of a background clip in dB
    mixup_prob: float = 0.0  # probability that a view is a MixUp: lam * crop + (1 - lam) * another clip brought to the crop's level,
    # the mixture at the crop's level; labelled by the teacher on the mixture itself
    mixup_alpha: float = 0.4  # MixUp's lam ~ Beta(alpha, alpha), folded to [0.5, 1] so the crop dominates and the view stays its clip's
    reverb_prob: float = 0.0  # probability that a view is reverberated with a room impulse response (from --rir-dir, else synthetic)
    rt60: tuple[float, float] = (0.2, 0.8)  # range of a synthetic room's reverberation time in seconds (at most 2)
    drr_db: tuple[float, float] = (0.0, 12.0)  # range of a synthetic room's direct-to-reverberant energy ratio in dB

    def __post_init__(self):
        for name in ("noise_prob", "mix_prob", "mixup_prob", "reverb_prob", "shift"):
            if not 0 <= getattr(self, name) <= 1:
                raise ValueError(f"view settings: {name} must be in [0, 1], got {getattr(self, name)}")
        for name in ("gain_db", "noise_snr_db", "mix_snr_db", "rt60", "drr_db"):
            value = getattr(self, name)
            if len(value) != 2 or not (math.isfinite(value[0]) and math.isfinite(value[1]) and value[0] <= value[1]):
                raise ValueError(f"view settings: {name} must be a range low,high with low <= high, got {value}")
        if not (0 < self.rt60[0] and self.rt60[1] <= MAX_RT60):
            raise ValueError(f"view settings: rt60 must lie in (0, {MAX_RT60}] seconds, got {self.rt60}")
        if self.mixup_alpha <= 0:
            raise ValueError(f"view settings: mixup_alpha must be positive, got {self.mixup_alpha}")

    def to_dict(self) -> dict:
        """The settings as stored in a label store's metadata (ranges as lists)."""
        settings = {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()}
        # the settings of kinds added in wav2small 0.3 are recorded only when used, so that a store
        # labelled before them still resumes (a store's view settings must match to resume it)
        for kind, keys in (("mixup_prob", ("mixup_prob", "mixup_alpha")), ("reverb_prob", ("reverb_prob", "rt60", "drr_db"))):
            if not settings[kind]:
                for key in keys:
                    del settings[key]
        return settings


@dataclass
class ExportConfig:
    """Options of an ONNX export (:func:`wav2small.export_onnx`); the comment of each field is its
    ``wav2small export`` help."""

    int8: bool = False  # also write model.int8.onnx: static int8 quantization calibrated on --calibration audio
    calibration: str | None = None  # audio folder, or label store whose views are rendered, for int8 calibration and the check (real speech, not noise)
    per_channel: bool = False  # one int8 weight scale per output channel instead of one per tensor
    activations: Literal["auto", "all"] = "auto"  # int8 activations in layers with >= 16 input and output channels (auto: where int8
    # kernels are faster; the others store int8 weights only) or in every body layer (all: for int8-only hardware); the front-end stays fp32
    reduce_range: bool = False  # 7-bit int8 weights (|w| <= 64) in layers with int8 activations: onnxruntime then gives the same
    # results on every x86 CPU (its kernels without VNNI add pairs of 8-bit products with int16 saturation); what a C bundle is checked on
    clip_seconds: float = 2.0  # length of the calibration and check crops in seconds
    max_clips: int = 256  # most calibration plus held-out crops in all
    holdout: float = 0.25  # fraction of the calibration files kept for the int8 check, never calibrating (wav2small.holdout)
    min_pearson: float = 0.99  # int8 vs fp32 Pearson per dimension on the held-out clips, at least
    min_ccc: float = 0.98  # int8 vs fp32 CCC per dimension on the held-out clips, at least
    atol: float = 1e-4  # largest |fp32 ONNX - torch| allowed
    checks: tuple = field(default=FP32_CHECKS, metadata={"cli": False})  # (batch size, seconds) of the fp32-versus-torch cases
    seed: int = 0  # seed of the order in which calibration files are read
    streaming: bool = False  # also write model.stream.onnx (and with --int8 model.stream.int8.onnx) of a Wav2Small: a fixed
    # chunk and the state tensors in and out, A/D/V after every chunk
    chunk: int = 512  # samples per call of the streaming graphs, a multiple of 2 x the front-end's hop (512 = 32 ms)
    decay_seconds: float | None = None  # the streaming graphs' estimate follows roughly the last N seconds (default: the whole stream)
    progress: bool = field(default=False, metadata={"cli": False})  # show progress bars

    def __post_init__(self):
        if self.activations not in ("auto", "all"):
            raise ValueError(f"activations must be 'auto' or 'all', got {self.activations!r}")
        if self.int8 and self.calibration is None:
            raise ValueError("int8 export needs calibration audio (an audio folder or a label store): real speech, not noise")


@dataclass
class CBundleConfig:
    """Options of a C bundle (:func:`wav2small.export.c.export_c`); the comment of each field is its
    ``wav2small export --c`` help."""

    hop_chunks: int = 16  # chunks of 32 ms per result of the C bundle (16: a result every 0.512 s for all the audio so far)
    check: bool = field(default=True, metadata={"cli": False})  # compile the bundle on this computer and compare it with onnxruntime
    measure: bool = field(default=True, metadata={"flag": "--no-device"})  # build it for a Cortex-M4F and measure flash, RAM and
    # instructions per second of audio under QEMU (--no-device: skip it)

    def __post_init__(self):
        if self.hop_chunks < 1:
            raise ValueError(f"hop_chunks must be at least 1, got {self.hop_chunks}")


@dataclass
class SearchConfig:
    """Settings of a student search (:func:`wav2small.search.search`); the comment of each field is
    its ``wav2small search`` help. A search folder resumes only with the same ``SEARCH_DEFINING``
    fields (recorded in OUT/search.json); the others may change between runs."""

    store: str = field(metadata={"positional": True})  # label store to distil every candidate on (from `wav2small label`)
    test_store: str  # label store of held-out audio (the recipe's labels_test): fidelity is measured there
    out: str  # search folder (created; resumed when it holds a search with the same settings)
    space: dict | None = field(default=None, metadata={"cli": False})  # {preset: {option: [values]}} (default: wav2small.search.DEFAULT_SPACE)
    candidates: int = 12  # candidates to measure, the reference included
    cost: Literal["int8-ms", "fp32-ms", "macs"] = "int8-ms"  # what the reward trades fidelity against: int8 or fp32
    # onnxruntime latency for 5 s of audio (ms), or M multiply-accumulates per second of audio
    target: float | None = None  # cost at which the reward is neutral, in the cost's unit (default: the reference's cost)
    exponent: float = -0.07  # w of the reward fidelity x (cost / target) ^ w (MnasNet's -0.07)
    steps: int = 400  # training steps per candidate
    batch_size: int = 16  # clips per training step
    lr: float = 2e-3  # peak learning rate of every candidate's training
    seed: int = 0  # seed of the candidate order and of every training
    threads: int | None = None  # torch threads for training (default: torch's choice)
    latency_threads: int = 1  # onnxruntime threads when timing
    repeats: int = 20  # timed runs per model; the best counts
    progress: bool = field(default=True, metadata={"flag": "--quiet"})  # print a line per candidate (--quiet: errors only)

    def __post_init__(self):
        if self.candidates < 1 or self.steps < 1 or self.repeats < 1 or self.latency_threads < 1:
            raise ValueError("candidates, steps, repeats and latency_threads must be positive")
        if self.target is not None and self.target <= 0:
            raise ValueError(f"target must be positive, got {self.target}")


#: The fields that define a search: a folder holding results under other values is not resumed.
SEARCH_DEFINING = ("store", "test_store", "space", "cost", "target", "exponent", "steps", "batch_size", "lr", "seed")


# the command line, generated from the fields


def field_help(cls) -> dict[str, str]:
    """Each field's help: the comment on its line and the comment-only lines right below it."""
    try:
        source = textwrap.dedent(inspect.getsource(cls))
    except (OSError, TypeError):  # no source (a frozen build): flags without help
        return {}
    comments = {t.start[0]: t.string.lstrip("#").strip()
                for t in tokenize.generate_tokens(io.StringIO(source).readline) if t.type == tokenize.COMMENT}
    lines = source.splitlines()
    names = {f.name for f in dataclasses.fields(cls)}
    helps = {}
    for number, line in enumerate(lines, 1):
        match = re.match(r" {4}(\w+)\s*:", line)
        if not match or match.group(1) not in names or match.group(1) in helps:
            continue
        parts = [comments[number]] if number in comments else []
        while number < len(lines) and lines[number].strip().startswith("#"):
            number += 1
            parts.append(comments[number])
        helps[match.group(1)] = " ".join(parts)
    return helps


class _KeyValues(argparse.Action):
    """KEY=VALUE, repeatable, into a dict; VALUE is read as JSON when it is JSON (20, 0.5, true), else kept as text."""

    def __call__(self, parser, namespace, value, option_string=None):
        key, sep, text = value.partition("=")
        if not sep or not key:
            parser.error(f"{option_string} needs KEY=VALUE, got {value!r}")
        try:
            parsed = json.loads(text)
        except json.JSONDecodeError:
            parsed = text
        setattr(namespace, self.dest, {**(getattr(namespace, self.dest) or {}), key: parsed})


def _numbers(kind):
    def parse(text: str):
        try:
            return tuple(kind(v) for v in text.split(",") if v.strip())
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}") from None
    return parse


def add_options(parser: argparse.ArgumentParser, cls) -> None:
    """Add one argument per field of the dataclass ``cls`` (see the module docstring)."""
    hints = typing.get_type_hints(cls)
    helps = field_help(cls)
    for f in dataclasses.fields(cls):
        meta = f.metadata
        if meta.get("cli", True) is False:
            continue
        kind = hints[f.name]
        args = typing.get_args(kind)
        if typing.get_origin(kind) in (typing.Union, types.UnionType) and type(None) in args:
            kind = next(a for a in args if a is not type(None))
        default = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
        required = default is dataclasses.MISSING
        text = helps.get(f.name, "").replace("%", "%%")
        options = {"help": text, "dest": f.name}
        flag = meta.get("flag", "--" + f.name.replace("_", "-"))
        if kind is bool:
            options.update(action="store_const", const=meta.get("const", not default), default=default)
        elif kind is dict:
            options.update(action=_KeyValues, default=None, metavar=meta.get("metavar"))
        else:
            if typing.get_origin(kind) is Literal:
                options["choices"] = list(typing.get_args(kind))
                kind = type(options["choices"][0])
            elif typing.get_origin(kind) is tuple:
                kind = _numbers(typing.get_args(kind)[0])
                options["metavar"] = "X,Y,..."
            options["type"] = kind
            if not required:
                options["default"] = default
                if default is not None:
                    options["help"] = f"{text} (default: %(default)s)"
        if meta.get("positional"):
            del options["dest"]
            parser.add_argument(f.name, **options)
        else:
            parser.add_argument(flag, required=required, **options)


def options_from_arguments(cls, args: argparse.Namespace) -> dict:
    """The fields of ``cls`` that ``args`` (parsed by a parser from :func:`add_options`) carries, by name."""
    values = {}
    for f in dataclasses.fields(cls):
        if f.metadata.get("cli", True) is False:
            continue
        value = getattr(args, f.name)
        values[f.name] = dict(value or {}) if f.type in ("dict", dict) else value
    return values
