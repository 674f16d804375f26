"""What every student shares: a dataclass config, and the one checkpoint format
(a folder with ``config.json`` + ``model.safetensors``) with save_pretrained / from_pretrained.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from ..contract import LABELS
from ..hub import resolve_pretrained

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"


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
        raw = json.loads(config_path.read_text()) if config_path.exists() else {}
        name = raw.get("architecture")
        model_cls = architecture_class(name) if isinstance(name, str) and name else cls
        if model_cls is Student:
            from .wav2small import Wav2Small

            model_cls = Wav2Small
        fields = {f.name for f in dataclasses.fields(model_cls.config_class)}
        config = model_cls.config_class(**{k: v for k, v in raw.items() if k in fields})
        model = model_cls(config)
        model.load_state_dict(load_file(str(weights_path), device=str(map_location)), strict=True)
        return model.eval()
