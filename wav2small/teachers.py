"""Teachers for distillation: Dawn (wav2vec2), Odyssey (WavLM), any A/D/V audio-classification
checkpoint, and weighted ensembles of them; :func:`load_teacher` is the one door.

Every teacher maps a (B, N) float waveform at 16 kHz to (B, 3) = [arousal, dominance, valence],
nominally 0..1 and never clipped. The models are implemented here with the state-dict names of
the published checkpoints, so the weights load strictly with no remote code. No weights ship with
this package; each teacher's licence is stated in its class docstring.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from torch import nn

from .contract import LABELS, SAMPLING_RATE
from .frontend import prenorm
from .hub import is_model_folder, resolve_pretrained
from .models.base import check_planned_size, read_config, safetensors_values


#: Short names for the paper's teachers; "dawn+odyssey" is the ensemble Wav2Small was distilled from.
ALIASES = {
    "dawn": "audeering/wav2vec2-large-robust-12-ft-emotion-msp-dim",
    "odyssey": "3loi/SER-Odyssey-Baseline-WavLM-Multi-Attributes",
}
LICENCES = {
    "dawn": "CC BY-NC-SA 4.0 (non-commercial, share-alike; students distilled from it inherit these questions)",
    "odyssey": "MIT (weights; trained on MSP-Podcast under its academic licence)",
}
#: config.json key of the teachers this package makes itself (random or fitted test teachers): what
#: they are. Their licence is recorded as "not applicable", never as a published model's.
ORIGIN_KEY = "wav2small_origin"


def published_licence(alias: str, folder: Path, source) -> str:
    """The licence to record for the weights of teacher ``alias`` ("dawn", "odyssey") loaded from
    ``folder`` (named ``source`` by the user): the published licence where the weights are the
    published ones (their hub id, a hub-cache copy of it, or a folder whose config.json names it
    as ``_name_or_path``), "not applicable" for a teacher this package made, else unknown."""
    config_file = Path(folder) / "config.json"
    config = json.loads(config_file.read_text()) if config_file.is_file() else {}
    if config.get(ORIGIN_KEY):
        return f"not applicable: {config[ORIGIN_KEY]}"
    hub_id = ALIASES[alias]
    names = [str(source), str(config.get("_name_or_path", "")), *Path(folder).parts]
    if any(hub_id in name or "models--" + hub_id.replace("/", "--") in name for name in names):
        return LICENCES[alias]
    return f"unknown (local folder; {LICENCES[alias].split(' (')[0]} if it holds the weights of {hub_id})"

# WavLM-large as published by Microsoft (microsoft/wavlm-large): what Odyssey's `ssl_type` names.
# Odyssey's config.json only repeats hidden size, layers and heads, so the rest comes from here.
WAVLM_LARGE = dict(
    hidden_size=1024, num_hidden_layers=24, num_attention_heads=16, intermediate_size=4096,
    conv_dim=(512,) * 7, conv_kernel=(10, 3, 3, 3, 3, 2, 2), conv_stride=(5, 2, 2, 2, 2, 2, 2), conv_bias=False,
    feat_extract_norm="layer", do_stable_layer_norm=True, num_conv_pos_embeddings=128, num_conv_pos_embedding_groups=16,
    num_buckets=320, max_bucket_distance=800, layer_norm_eps=1e-5, hidden_act="gelu",
)


def _receptive_field(config) -> int:
    """Samples the convolutional feature encoder needs for one output frame (400 for wav2vec2/WavLM)."""
    field, stride = config.conv_kernel[0], config.conv_stride[0]
    for kernel, step in zip(config.conv_kernel[1:], config.conv_stride[1:]):
        field += (kernel - 1) * stride
        stride *= step
    return field


def _label_order(id2label) -> list[int] | None:
    """Output column of arousal, dominance, valence, mapped by name; None if the names do not fit."""
    names = {str(v).strip().lower(): int(k) for k, v in (id2label or {}).items()}
    if not all(label in names for label in LABELS):
        return None
    return [names[label] for label in LABELS]


def _source_name(name_or_path) -> str:
    """A hub id as given; a folder as an absolute path (so a store resumed from elsewhere still matches)."""
    path = Path(str(name_or_path)).expanduser()
    return str(path.absolute()) if path.is_dir() else str(name_or_path)


def _revision(folder: Path) -> str:
    """The hub commit of a folder in the huggingface_hub cache (``.../snapshots/<hash>``), else "local"."""
    return folder.name if folder.parent.name == "snapshots" else "local"


def _weight_files(folder: Path) -> list[Path]:
    """The weights files of a published folder: model.safetensors, the shards a sharded index names
    (each inside the folder: an index is data from disk and must not point elsewhere), or
    pytorch_model.bin."""
    index = folder / "model.safetensors.index.json"
    if (folder / "model.safetensors").exists():
        return [folder / "model.safetensors"]
    if index.exists():
        try:
            names = sorted(set(json.loads(index.read_text())["weight_map"].values()))
        except (ValueError, KeyError, TypeError, AttributeError) as error:
            raise ValueError(f"{index}: not a weights index with a weight_map ({type(error).__name__}: {error})") from None
        for name in names:
            if not isinstance(name, str) or Path(name).is_absolute() or ".." in Path(name).parts or not name.strip():
                raise ValueError(f"{index}: weight_map entry {name!r} points outside the teacher folder; refusing to load it")
        return [folder / name for name in names]
    if (folder / "pytorch_model.bin").exists():
        return [folder / "pytorch_model.bin"]
    raise FileNotFoundError(f"{folder}: no model.safetensors or pytorch_model.bin in the teacher folder")


def _checkpoint_shapes(folder: Path) -> dict[str, tuple]:
    """{key: shape} of a published folder's weights, without reading the tensors."""
    shapes = {}
    for path in _weight_files(folder):
        if path.suffix == ".bin":
            state = _torch_load(path, mmap=True)
            shapes.update((k, tuple(v.shape)) for k, v in state.items())
        else:
            shapes.update(safetensors_values(path))
    return shapes


def _torch_load(path: Path, **options) -> dict:
    try:
        return torch.load(path, map_location="cpu", weights_only=True, **options)
    except Exception as error:  # pickle and zip errors of many kinds; weights_only never runs code
        raise ValueError(f"{path}: not a readable weights file ({type(error).__name__}: {str(error).splitlines()[0][:200]})") from None


def _read_state_dict(folder: Path) -> dict[str, torch.Tensor]:
    """Weights of a published folder: model.safetensors (single or sharded) or pytorch_model.bin."""
    from safetensors.torch import load_file

    state = {}
    for path in _weight_files(folder):
        if path.suffix == ".bin":
            state.update(_torch_load(path))
            continue
        try:
            state.update(load_file(str(path)))
        except Exception as error:  # safetensors reports a malformed file with its own error type
            raise ValueError(f"{path}: not a readable safetensors file ({error})") from None
    # Checkpoints saved before torch's parametrized weight_norm name the positional conv g and v.
    legacy = {".weight_g": ".parametrizations.weight.original0", ".weight_v": ".parametrizations.weight.original1"}
    return {(key[:-9] + legacy[key[-9:]] if key[-9:] in legacy else key): value for key, value in state.items()}


def _load_strict(model: nn.Module, state: dict, source) -> None:
    """load_state_dict that names the folder and the offending keys. ``masked_spec_embed`` (a
    training-only SpecAugment vector) may be absent from a checkpoint; every other key must match."""
    missing, unexpected = model.load_state_dict(state, strict=False)
    missing = [k for k in missing if not k.endswith("masked_spec_embed")]
    if missing or unexpected:
        raise ValueError(f"{source}: checkpoint does not fit {type(model).__name__}: "
                         f"missing {missing[:5]}{'...' if len(missing) > 5 else ''}, "
                         f"unexpected {unexpected[:5]}{'...' if len(unexpected) > 5 else ''}")


def _save_weights(model: nn.Module, directory: Path) -> None:
    from safetensors.torch import save_file

    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(directory / "model.safetensors"), metadata={"format": "pt"})


class Teacher(nn.Module):
    """What every teacher shares: (B, N) 16 kHz waveform -> (B, 3) [arousal, dominance, valence].

    Attributes: ``name`` (short name, also the column prefix in a label store), ``source`` (hub id
    or folder it was loaded from), ``revision`` (hub commit or "local"), ``licence``,
    ``sampling_rate`` (16000), ``min_samples`` (shortest accepted input).
    """

    labels = LABELS
    sampling_rate = SAMPLING_RATE
    licence = "see the model card of the checkpoint"
    alias = None  # of a published teacher (ALIASES): its licence applies only to its published weights

    def __init__(self):
        super().__init__()
        self.name, self.source, self.revision = type(self).__name__.lower(), None, "local"

    @property
    def min_samples(self) -> int:
        raise NotImplementedError

    def forward_members(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Each member's (B, 3) output by name; a single teacher is its own only member."""
        return {self.name: self(x)}

    def combine(self, outputs: dict[str, torch.Tensor]) -> torch.Tensor:
        """The teacher's output from :meth:`forward_members`' outputs."""
        return outputs[self.name]

    def describe(self) -> dict:
        """What a label store records about this teacher."""
        return {"name": self.name, "class": type(self).__name__, "source": None if self.source is None else str(self.source),
                "revision": self.revision, "licence": self.licence}

    @classmethod
    def from_pretrained(cls, name_or_path=None) -> "Teacher":
        """Load from a folder or hub id in the published format (or an alias, "dawn" or "odyssey");
        by default the published weights of this class (its alias)."""
        name_or_path = cls.alias if name_or_path is None else name_or_path
        if name_or_path is None:
            raise TypeError(f"{cls.__name__}.from_pretrained needs a folder or hub id")
        source = hub_source(name_or_path)
        return cls._from_folder(_resolve_teacher(source), source)

    @classmethod
    def _from_folder(cls, folder: Path, source) -> "Teacher":
        """The teacher in ``folder`` (resolved from ``source``, as given by the user)."""
        raise NotImplementedError

    def _input(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 2:
            raise ValueError(f"{self.name}: expected a waveform batch of shape (B, N), got {tuple(x.shape)}")
        if x.shape[1] < self.min_samples:
            raise ValueError(f"{self.name}: {x.shape[1]} samples is shorter than the {self.min_samples} the teacher needs")
        return x.float()  # normalise in float32 even when the weights are half precision

    def _weights_dtype(self):
        return next(self.parameters()).dtype

    def _load_published(self, folder: Path, source, state=None) -> "Teacher":
        """Load the weights of a published folder strictly and remember where they came from."""
        try:
            _load_strict(self, _read_state_dict(folder) if state is None else state, folder)
        except RuntimeError as error:  # tensors of the wrong shape
            details = "; ".join(line.strip() for line in str(error).splitlines()[1:4])
            raise ValueError(f"{folder}: checkpoint does not fit {type(self).__name__} ({details})") from None
        self.source, self.revision = _source_name(source), _revision(folder)
        if self.alias:
            self.licence = published_licence(self.alias, folder, source)
        if source not in ALIASES.values():
            self.name = Path(str(source)).name
        return self.eval()


class RegressionHead(nn.Module):
    """Dawn's head: dense -> tanh -> out_proj (the dropouts around them are inactive at inference)."""

    def __init__(self, hidden_size: int, num_labels: int = 3):
        super().__init__()
        self.dense = nn.Linear(hidden_size, hidden_size)
        self.out_proj = nn.Linear(hidden_size, num_labels)

    def forward(self, x):
        return self.out_proj(torch.tanh(self.dense(x)))


class DawnTeacher(Teacher):
    """audEERING's wav2vec2-large-robust-12 fine-tuned on MSP-Podcast for arousal, dominance, valence.

    Hub id ``audeering/wav2vec2-large-robust-12-ft-emotion-msp-dim`` (alias "dawn"). Licence of the
    weights: CC BY-NC-SA 4.0 (research, non-commercial use; share-alike). Forward: per-utterance
    normalisation (x - mean) / sqrt(var + 1e-7), ``Wav2Vec2Model``, mean over all frames (no mask:
    padding would change the output, so batch clips of equal length), dense -> tanh -> out_proj.
    State-dict names: ``wav2vec2.*``, ``classifier.dense.*``, ``classifier.out_proj.*``.

    Example (it needs files or a download, so it is not run as a doctest)::

        teacher = DawnTeacher.from_pretrained("dawn")
        teacher(torch.zeros(1, 16000)).shape
        # -> torch.Size([1, 3])
    """

    alias, licence = "dawn", LICENCES["dawn"]

    def __init__(self, config):
        from transformers import Wav2Vec2Model

        super().__init__()
        self.name = "dawn"
        self.config = config
        self.wav2vec2 = Wav2Vec2Model(config)
        self.classifier = RegressionHead(config.hidden_size, config.num_labels)
        self.order = _label_order(config.id2label) or [0, 1, 2]

    @property
    def min_samples(self) -> int:
        return _receptive_field(self.config)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self._input(x)
        x = prenorm(x)  # per utterance: (x - mean) / sqrt(var + 1e-7), the students' own prenorm
        hidden = self.wav2vec2(x.to(self._weights_dtype())).last_hidden_state  # (B, frames, hidden)
        return self.classifier(hidden.mean(dim=1))[:, self.order].float()

    @classmethod
    def _from_folder(cls, folder: Path, source) -> "DawnTeacher":
        from transformers import Wav2Vec2Config

        try:
            config = Wav2Vec2Config.from_pretrained(folder, trust_remote_code=False)
        except (ValueError, TypeError, OSError) as error:
            raise ValueError(f"{folder}/config.json: not a wav2vec2 configuration ({error})") from None
        check_planned_size(lambda: cls(config), _checkpoint_shapes(folder), source=folder)
        return cls(config)._load_published(folder, source)

    def save_pretrained(self, directory) -> Path:
        """Write config.json, preprocessor_config.json and model.safetensors as the published folder has them."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        config = self.config.to_dict()
        config["architectures"] = ["Wav2Vec2ForSpeechClassification"]
        (directory / "config.json").write_text(json.dumps(config, indent=2, default=list) + "\n")
        preprocessor = {"do_normalize": True, "feature_extractor_type": "Wav2Vec2FeatureExtractor", "feature_size": 1,
                        "padding_side": "right", "padding_value": 0.0, "return_attention_mask": True, "sampling_rate": SAMPLING_RATE}
        (directory / "preprocessor_config.json").write_text(json.dumps(preprocessor, indent=2) + "\n")
        _save_weights(self, directory)
        return directory


class AttentiveStatisticsPooling(nn.Module):
    """Attentive statistics pooling (Okabe et al. 2018) as in the MSP-Podcast challenge baseline:
    w = softmax_t(tanh(sap_linear(x)) @ attention); [sum w x, sqrt(max(sum w x^2 - mu^2, eps))]."""

    def __init__(self, hidden_size: int, eps: float = 1e-5):
        super().__init__()
        self.eps = eps
        self.sap_linear = nn.Linear(hidden_size, hidden_size)
        self.attention = nn.Parameter(torch.randn(hidden_size, 1))

    def forward(self, x):  # (B, T, D) -> (B, 2D)
        w = torch.softmax(torch.tanh(self.sap_linear(x)) @ self.attention, dim=1)  # (B, T, 1)
        mu = (x * w).sum(dim=1)
        sigma = torch.sqrt(((x * x * w).sum(dim=1) - mu * mu).clamp(min=self.eps))
        return torch.cat([mu, sigma], dim=-1)


class OdysseyHead(nn.Module):
    """Odyssey's regression head; the nesting (``fc.0.0``, ``fc.0.1``, ``out.0``) is the checkpoint's."""

    def __init__(self, input_size: int, hidden_size: int, num_labels: int = 3, hidden_layers: int = 1):
        super().__init__()
        sizes = [input_size] + [hidden_size] * hidden_layers
        self.fc = nn.ModuleList(
            nn.Sequential(nn.Linear(a, b), nn.LayerNorm(b), nn.ReLU()) for a, b in zip(sizes[:-1], sizes[1:])
        )
        self.out = nn.Sequential(nn.Linear(sizes[-1], num_labels))

    def forward(self, x):
        for layer in self.fc:
            x = layer(x)
        return self.out(x)


class OdysseyTeacher(Teacher):
    """The Odyssey 2024 MSP-Podcast challenge baseline: WavLM-large + attentive statistics pooling + MLP.

    Hub id ``3loi/SER-Odyssey-Baseline-WavLM-Multi-Attributes`` (alias "odyssey"). Licence of the
    weights: MIT (trained on MSP-Podcast, which has an academic licence). Implemented natively
    (the card uses remote code): global normalisation (x - mean) / (std + 1e-6) with ``mean``/``std``
    from config.json, ``WavLMModel``, attentive statistics pooling, Linear -> LayerNorm -> ReLU ->
    Linear to 3. State-dict names: ``ssl_model.*``, ``pool_model.*``, ``ser_model.*``.

    The published config.json names its backbone by ``ssl_type`` ("microsoft/wavlm-large") plus
    hidden size, layers and heads; the remaining WavLM settings are WavLM-large's. A folder may add
    an ``ssl_config`` dict of WavLMConfig fields (the tiny test teachers do) to override them.
    """

    alias, licence = "odyssey", LICENCES["odyssey"]

    def __init__(self, config: dict):
        from transformers import WavLMConfig, WavLMModel

        super().__init__()
        self.name = "odyssey"
        self.config = dict(config)
        ssl = dict(WAVLM_LARGE)
        ssl.update({k: config[k] for k in ("hidden_size", "num_hidden_layers", "num_attention_heads") if k in config})
        ssl.update(config.get("ssl_config") or {})
        self.ssl_config = WavLMConfig(**ssl)
        hidden = self.ssl_config.hidden_size
        self.mean, self.std = float(config.get("mean", 0.0)), float(config.get("std", 1.0))
        self.ssl_model = WavLMModel(self.ssl_config)
        self.pool_model = AttentiveStatisticsPooling(hidden, eps=float(config.get("pooling_eps", 1e-5)))
        self.ser_model = OdysseyHead(2 * hidden, hidden, int(config.get("num_classes", 3)), int(config.get("classifier_hidden_layers", 1)))
        self.order = _label_order(config.get("id2label")) or [0, 1, 2]

    @property
    def min_samples(self) -> int:
        return _receptive_field(self.ssl_config)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = (self._input(x) - self.mean) / (self.std + 1e-6)
        hidden = self.ssl_model(x.to(self._weights_dtype())).last_hidden_state  # (B, frames, hidden)
        return self.ser_model(self.pool_model(hidden))[:, self.order].float()

    @classmethod
    def _from_folder(cls, folder: Path, source) -> "OdysseyTeacher":
        config = read_config(folder)
        for key in ("mean", "std"):
            if key not in config:
                raise ValueError(f"{folder}/config.json: no normalisation constant '{key}' (an Odyssey config holds mean and std)")
        state = _read_state_dict(folder)
        # WavLM settings the config leaves to `ssl_type`, read off the weights where they show
        ssl = dict(config.get("ssl_config") or {})
        ssl.setdefault("conv_bias", "ssl_model.feature_extractor.conv_layers.0.conv.bias" in state)
        ffn = state.get("ssl_model.encoder.layers.0.feed_forward.intermediate_dense.weight")
        if ffn is not None:
            ssl.setdefault("intermediate_size", int(ffn.shape[0]))
        config = {**config, "ssl_config": ssl}
        check_planned_size(lambda: cls(config), {k: tuple(v.shape) for k, v in state.items()}, source=folder)
        return cls(config)._load_published(folder, source, state)

    def save_pretrained(self, directory) -> Path:
        """Write config.json (the published SERModel keys) and model.safetensors."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        (directory / "config.json").write_text(json.dumps(self.config, indent=2) + "\n")
        _save_weights(self, directory)
        return directory


class AudioClassificationTeacher(Teacher):
    """Any transformers audio-classification checkpoint with three regression outputs whose
    ``id2label`` names arousal, dominance and valence (any order: outputs are mapped by name).

    Input normalisation follows the folder's preprocessor_config.json (``do_normalize``: per
    utterance zero mean, unit variance). Licence: that of the checkpoint (see its model card).
    """

    def __init__(self, model: nn.Module, *, normalize: bool = True):
        super().__init__()
        self.model = model
        self.normalize = normalize
        self.order = _label_order(model.config.id2label)
        if self.order is None or model.config.num_labels != 3:
            raise ValueError(f"{getattr(model.config, '_name_or_path', 'checkpoint')}: id2label {model.config.id2label} "
                             "does not name arousal, dominance and valence; not an A/D/V teacher")

    @property
    def min_samples(self) -> int:
        config = self.model.config
        return _receptive_field(config) if hasattr(config, "conv_kernel") else 400

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self._input(x)
        if self.normalize:
            x = prenorm(x)
        return self.model(x.to(self._weights_dtype())).logits[:, self.order].float()

    @classmethod
    def _from_folder(cls, folder: Path, name_or_path) -> "AudioClassificationTeacher":
        from transformers import AutoConfig, AutoModelForAudioClassification
        from transformers.utils import logging as hf_logging

        preprocessor = folder / "preprocessor_config.json"
        normalize = json.loads(preprocessor.read_text()).get("do_normalize", True) if preprocessor.exists() else True
        hf_logging.disable_progress_bar()
        try:  # remote code never runs, and is never asked about (transformers would prompt in a terminal)
            config = AutoConfig.from_pretrained(folder, trust_remote_code=False)
            check_planned_size(lambda: AutoModelForAudioClassification.from_config(config, trust_remote_code=False),
                               _checkpoint_shapes(folder), source=folder)
            model, info = AutoModelForAudioClassification.from_pretrained(folder, trust_remote_code=False, output_loading_info=True)
        except (ValueError, KeyError, TypeError, RuntimeError) as error:
            first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
            raise ValueError(f"{name_or_path}: not a transformers audio-classification checkpoint ({first})") from None
        finally:
            hf_logging.enable_progress_bar()
        missing = sorted(k for k in info["missing_keys"] if not k.endswith("masked_spec_embed"))
        unexpected, mismatched = sorted(info["unexpected_keys"]), sorted(k[0] for k in info["mismatched_keys"])
        if missing or unexpected or mismatched:  # transformers would start from random weights there
            raise ValueError(f"{folder}: checkpoint does not fit {type(model).__name__}: missing {missing[:5]}, "
                             f"unexpected {unexpected[:5]}, wrong shape {mismatched[:5]}; a teacher with randomly "
                             "initialised parts would label nonsense")
        teacher = cls(model.eval(), normalize=normalize)
        teacher.name, teacher.source, teacher.revision = Path(str(name_or_path)).name, _source_name(name_or_path), _revision(folder)
        return teacher.eval()


class EnsembleTeacher(Teacher):
    """Several teachers on the same waveform, combined per dimension with weights (default equal).

    ``forward`` gives the weighted mean; ``forward_members`` gives each member's own output.
    Outputs are never clipped.

    Example (it needs files or a download, so it is not run as a doctest)::

        ensemble = load_teacher("dawn+odyssey")
    """

    def __init__(self, members, weights=None):
        super().__init__()
        members = list(members)
        if not members:
            raise ValueError("an ensemble needs at least one teacher")
        weights = [1.0] * len(members) if weights is None else [float(w) for w in weights]
        if len(weights) != len(members) or any(w < 0 for w in weights) or sum(weights) <= 0:
            raise ValueError(f"ensemble weights {weights} must be {len(members)} non-negative numbers with a positive sum")
        names = [m.name for m in members]
        for i, name in enumerate(names):  # column names must be unique
            if names.count(name) > 1:
                members[i].name = names[i] = f"{name}{names[:i].count(name) + 1}"
        self.members = nn.ModuleList(members)
        self.weights = [w / sum(weights) for w in weights]
        self.name = "+".join(names)
        self.licence = "; ".join(f"{m.name}: {m.licence}" for m in members)

    @property
    def min_samples(self) -> int:
        return max(m.min_samples for m in self.members)

    def forward_members(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        return {m.name: m(x) for m in self.members}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.combine(self.forward_members(x))

    def combine(self, outputs: dict[str, torch.Tensor]) -> torch.Tensor:
        """Weighted mean of member outputs, as returned by :meth:`forward_members`."""
        return sum(w * outputs[m.name] for w, m in zip(self.weights, self.members))

    def describe(self) -> dict:
        return {"name": self.name, "class": type(self).__name__, "weights": self.weights,
                "members": [m.describe() for m in self.members], "licence": self.licence}


def _resolve_teacher(name_or_path) -> Path:
    """Folder for a teacher: safetensors weights when the hub has them, else pytorch_model.bin."""
    from .hub import ModelNotFoundError

    weights = ("*.safetensors", "pytorch_model.bin")
    try:
        folder = resolve_pretrained(name_or_path, allow_patterns=("*.json", "*.safetensors"), require=weights)
    except ModelNotFoundError:
        folder = None  # offline, maybe with pytorch_model.bin cached
    if folder is None or not any(any(folder.glob(pattern)) for pattern in weights):
        folder = resolve_pretrained(name_or_path, allow_patterns=("*.json", "*.bin"), require=weights)
    if not (folder / "config.json").exists():
        raise FileNotFoundError(f"{name_or_path}: no config.json in the teacher folder {folder}")
    if not any(any(folder.glob(pattern)) for pattern in weights):
        hint = "" if Path(str(name_or_path)).expanduser().is_dir() else \
            " (a partial hub download: run once with network, or pass a folder that holds the weights)"
        raise FileNotFoundError(f"{name_or_path}: no model.safetensors or pytorch_model.bin in {folder}{hint}")
    return folder


def hub_source(name) -> str:
    """Where a teacher member is loaded from: a model folder as given (it wins over an alias of the
    same spelling), an alias ("dawn", "odyssey") as its hub id, anything else as a hub id."""
    name = str(name)
    return ALIASES[name] if name in ALIASES and not is_model_folder(name) else name


def is_teacher_spec(spec: str) -> bool:
    """Whether a model string that names no model folder is a teacher spec: an alias or several
    members joined by "+"."""
    return spec in ALIASES or "+" in spec


def teacher_members(spec) -> list[str]:
    """The members of a teacher spec: a list as given; a string that names a model folder as itself;
    else the string split at "+"."""
    if isinstance(spec, (list, tuple)):
        return [str(s) for s in spec]
    spec = str(spec)
    if is_model_folder(spec):
        return [spec]
    return [s.strip() for s in spec.split("+") if s.strip()]


#: State-dict keys that only the published layouts have (checked as well as config.json's name).
DAWN_KEYS = ("classifier.dense.weight", "classifier.out_proj.weight", "wav2vec2.feature_projection.projection.weight")
ODYSSEY_KEYS = ("pool_model.sap_linear.weight", "pool_model.attention", "ser_model.out.0.weight")


def _load_member(name: str) -> Teacher:
    """One teacher, its class chosen by its weights' keys and its config.json; its folder is resolved once."""
    source = hub_source(name)
    folder = _resolve_teacher(source)
    config = read_config(folder)
    architectures = config.get("architectures") or []
    keys = _checkpoint_shapes(folder)
    if all(k in keys for k in ODYSSEY_KEYS) or config.get("model_type") == "ser" or "SERModel" in architectures:
        teacher = OdysseyTeacher._from_folder(folder, source)
    elif all(k in keys for k in DAWN_KEYS) or "Wav2Vec2ForSpeechClassification" in architectures:
        teacher = DawnTeacher._from_folder(folder, source)
    else:
        teacher = AudioClassificationTeacher._from_folder(folder, source)
    if source != name:  # loaded by alias: the alias names it
        teacher.name = name
    return teacher


def load_teacher(spec, *, device="cpu", weights=None) -> Teacher:
    """Load a teacher or an ensemble of teachers.

    Args:
        spec: "dawn", "odyssey", "dawn+odyssey" (the paper's ensemble), a hub id, a folder, several
            of these joined by "+" (e.g. "runs/t1+runs/t2"), or a list of them. A string naming an
            model folder is that folder, before any alias or "+".
        device: "cpu" or "cuda" (the model is moved there, in eval mode).
        weights: per-member weights of an ensemble (default equal); normalised to sum to 1.

    Returns:
        A :class:`Teacher` (an :class:`EnsembleTeacher` for several members): ``forward(x)`` maps a
        (B, N) 16 kHz float waveform to (B, 3) [arousal, dominance, valence], unclipped;
        ``forward_members(x)`` gives each member's output by name.

    Example (it needs files or a download, so it is not run as a doctest)::

        teacher = load_teacher("dawn+odyssey", device="cuda")
    """
    if isinstance(spec, nn.Module):
        return spec.to(device).eval()
    names = teacher_members(spec)
    if not names:
        raise ValueError(f"empty teacher spec {spec!r}")
    members = [_load_member(name) for name in names]
    teacher = members[0] if len(members) == 1 and weights is None else EnsembleTeacher(members, weights)
    return teacher.to(device).eval()

