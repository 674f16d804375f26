"""What every student shares: a dataclass config (checked before anything is built), and the one
checkpoint format (a folder with ``config.json`` + ``model.safetensors``) with save_pretrained /
from_pretrained. Also the size check every model read from disk passes before it is built.
"""

from __future__ import annotations

import dataclasses
import json
import math
import typing
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from ..contract import LABELS
from ..frontend import PRENORM_EPS, LogMelFrontEnd
from ..hub import resolve_pretrained

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"

#: Plausible ranges (inclusive) of student settings, by field name: a config outside them is
#: refused before a model is built (a config.json is data from disk).
LIMITS = {
    "channels": (1, 1024), "n_mels": (1, 512), "n_fft": (4, 8192), "hop": (1, 8192), "sampling_rate": (4000, 384000),
    "dropout": (0.0, 1.0), "prenorm_seconds": (1e-3, 3600.0), "prenorm_eps": (1e-30, 1.0),
    "depth": (1, 64), "pool_after": (1, 64), "width": (0.01, 16.0),
}
#: A model built from a config.json may hold at most this many times the values of its weights
#: file (plus a little): a config that plans far more than its checkpoint holds is refused unbuilt.
SIZE_SLACK = 2


def read_config(folder) -> dict:
    """The ``config.json`` of a model folder as a dict ({} when there is none); ValueError naming the
    file when it is not a JSON object."""
    path = Path(folder) / CONFIG_FILE
    if not path.exists():
        return {}
    try:
        raw = json.loads(path.read_text())
    except (ValueError, UnicodeDecodeError) as error:
        raise ValueError(f"{path}: not valid JSON ({error})") from None
    if not isinstance(raw, dict):
        raise ValueError(f"{path}: expected a JSON object of settings, got {type(raw).__name__}")
    return raw


def check_config(config, *, source="config") -> None:
    """Raise ValueError naming ``source`` and the field when a setting of the dataclass ``config`` has
    the wrong type (an int must be an int, a float a finite number, a str a str) or lies outside
    ``LIMITS``."""
    hints = typing.get_type_hints(type(config))
    for field in dataclasses.fields(config):
        value, hint = getattr(config, field.name), hints.get(field.name)
        wrong = {int: not isinstance(value, int) or isinstance(value, bool),
                 float: not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value),
                 str: not isinstance(value, str), bool: not isinstance(value, bool)}.get(hint, False)
        if wrong:
            raise ValueError(f"{source}: {field.name} must be {hint.__name__}, got {value!r}")
        low, high = LIMITS.get(field.name, (None, None))
        if low is not None and not low <= value <= high:
            raise ValueError(f"{source}: {field.name} = {value!r} lies outside the plausible range {low}..{high}")


def planned_values(build) -> int:
    """Values in the state dict of the module ``build()`` returns, counted without allocating them
    (built on torch's meta device)."""
    with torch.device("meta"):
        module = build()
    return sum(t.numel() for t in module.state_dict().values())


def safetensors_values(path) -> dict[str, tuple]:
    """{key: shape} of a safetensors file, read from its header alone; ValueError for a malformed file."""
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            return {key: tuple(f.get_slice(key).get_shape()) for key in f.keys()}
    except Exception as error:  # safetensors reports a malformed file with its own error type
        raise ValueError(f"{path}: not a readable safetensors file ({error})") from None


def check_planned_size(build, shapes: dict, *, source) -> None:
    """Refuse (ValueError naming ``source``) a model whose config plans far more values than the
    checkpoint holds (``shapes``: {key: shape}), before it is built."""
    have = sum(math.prod(shape) for shape in shapes.values())
    try:
        planned = planned_values(build)
    except (ValueError, TypeError, RuntimeError) as error:
        raise ValueError(f"{source}: config.json does not describe a model that can be built ({error})") from None
    if planned > SIZE_SLACK * have + 100_000:
        raise ValueError(f"{source}: config.json describes a model of {planned:,} values but the weights hold {have:,}; "
                         "refusing to build it")


@dataclass
class LogMelImageConfig:
    """Settings of the students that read the log-mel as an image (MobileNets, MnasNet,
    EfficientFormer, T2T-ViT).

    n_fft, hop: frame and hop in samples of the conv-DFT front-end (400 / 160 = 25 ms / 10 ms at
    16 kHz, the usual speech frames). n_mels: mel bands (64, so a 32x downsampling leaves 2
    bands). dropout: before the last Linear. prenorm_eps: see
    :class:`wav2small.models.Wav2SmallConfig`.
    """

    n_fft: int = 400
    hop: int = 160
    n_mels: int = 64
    dropout: float = 0.0
    sampling_rate: int = 16000
    prenorm_eps: float = PRENORM_EPS


class Student(nn.Module):
    """Base of every student: waveform (B, N) at 16 kHz -> (B, 3) arousal, dominance, valence.

    Subclasses set ``config_class`` (a dataclass) and ``architecture`` (the name written into
    config.json that selects the class when loading).
    """

    config_class: type = None
    architecture: str = None
    labels = LABELS

    def __init__(self, config=None, **overrides):
        super().__init__()
        config = config if config is not None else self.config_class()
        self.config = dataclasses.replace(config, **overrides) if overrides else config
        check_config(self.config, source=type(self).__name__)

    @property
    def sampling_rate(self) -> int:
        return self.config.sampling_rate

    @property
    def min_samples(self) -> int:
        """Shortest input the model accepts (one analysis frame)."""
        return self.config.n_fft

    def num_parameters(self, trainable_only: bool = True) -> int:
        return sum(p.numel() for p in self.parameters() if p.requires_grad or not trainable_only)

    def num_state_values(self) -> int:
        """Every value in the state dict (trainable, frozen front-end, BN statistics)."""
        return sum(t.numel() for t in self.state_dict().values())

    def config_dict(self) -> dict:
        return {"architecture": self.architecture, **dataclasses.asdict(self.config)}

    def save_pretrained(self, directory) -> Path:
        """Write ``config.json`` and ``model.safetensors`` into ``directory``."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        state = {k: v.detach().cpu().contiguous() for k, v in self.state_dict().items()}
        save_file(state, str(directory / WEIGHTS_FILE), metadata={"architecture": self.architecture})
        (directory / CONFIG_FILE).write_text(json.dumps(self.config_dict(), indent=2) + "\n")
        return directory

    @classmethod
    def from_pretrained(cls, name_or_path, *, map_location="cpu") -> "Student":
        """Load a student from a folder or a hub id (downloaded and cached by huggingface_hub).

        Called on :class:`Student` itself, the class is chosen by ``architecture`` in config.json;
        a config.json without it (the published card) loads as the class it is called on.
        """
        from .registry import architecture_class

        folder = resolve_pretrained(name_or_path)
        config_path, weights_path = folder / CONFIG_FILE, folder / WEIGHTS_FILE
        if not weights_path.exists():
            raise FileNotFoundError(f"{folder}: no {WEIGHTS_FILE} in the model folder")
        raw = read_config(folder)
        name = raw.get("architecture")
        model_cls = architecture_class(name) if isinstance(name, str) and name else cls
        if model_cls is Student:
            from .wav2small import Wav2Small

            model_cls = Wav2Small
        fields = {f.name for f in dataclasses.fields(model_cls.config_class)}
        config = model_cls.config_class(**{k: v for k, v in raw.items() if k in fields})
        check_config(config, source=config_path)
        check_planned_size(lambda: model_cls(config), safetensors_values(weights_path), source=folder)
        model = model_cls(config)
        try:
            model.load_state_dict(load_file(str(weights_path), device=str(map_location)), strict=True)
        except RuntimeError as error:  # missing, unexpected or mis-shaped tensors
            details = "; ".join(line.strip() for line in str(error).splitlines()[1:4])
            raise ValueError(f"{weights_path}: the weights do not fit config.json ({details})") from None
        return model.eval()


class LogMelImageStudent(Student):
    """Base of the students that read the log-mel as an image: builds ``self.frontend`` from the
    config (a :class:`LogMelImageConfig`) and checks ``config.variant`` against ``tables``
    (variant name -> the family's table, set by each family that has variants)."""

    tables: dict = {}

    def __init__(self, config=None, **overrides):
        super().__init__(config, **overrides)
        if self.tables and self.config.variant not in self.tables:
            raise ValueError(f"unknown {type(self).__name__} variant {self.config.variant!r}; choose one of {sorted(self.tables)}")
        self.frontend = LogMelFrontEnd(self.config.sampling_rate, self.config.n_fft, self.config.hop, self.config.n_mels,
                                       prenorm_eps=self.config.prenorm_eps)

    @property
    def table(self):
        """This variant's table."""
        return self.tables[self.config.variant]
