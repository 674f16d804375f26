"""Running models on waveforms, and the one resolver of model specs.

A runner maps a batch of 16 kHz mono waveforms, float32 (B, N), to (B, 3) arousal, dominance,
valence: :class:`TorchRunner` for any torch module (students, teachers), :class:`OnnxRunner` for
an exported model. :class:`EqualLengthBatcher` groups clips of equal length (padding would change
the models' outputs). :func:`resolve_model` decides what a model spec names, once for the package:
predict, evaluate, export and train all go through it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .contract import CONTRACT_FILE, FP32_FILE, MIN_SAMPLES, MODEL_FILES
from .hub import is_model_folder, resolve_pretrained
from .models.base import WEIGHTS_FILE, read_config


class TorchRunner:
    """Runs a torch module mapping (B, N) 16 kHz waveforms to (B, 3), in eval mode, without gradients.

    ``min_samples``: the module's shortest input (its ``min_samples``, else one analysis frame).
    """

    def __init__(self, module: torch.nn.Module, *, device="cpu"):
        self.device = torch.device(device)
        self.module = module.to(self.device).eval()
        self.min_samples = int(getattr(module, "min_samples", MIN_SAMPLES))

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            x = torch.from_numpy(np.ascontiguousarray(batch, dtype=np.float32)).to(self.device)
            return self.module(x).float().cpu().numpy()


class OnnxRunner:
    """Runs an exported model with onnxruntime: input ``signal`` (B, N) float32 at 16 kHz -> (B, 3).

    ``path`` is an ``.onnx`` file or an export folder (see :func:`wav2small.export_onnx`); in a
    folder, ``precision`` picks ``model.onnx`` (``fp32``, the default) or ``model.int8.onnx``
    (``int8``), and ``contract.json`` gives the shortest input. ``threads`` sets onnxruntime's
    intra-op threads (default: its own choice).
    """

    def __init__(self, path, *, device="cpu", threads: int | None = None, precision: str = "fp32"):
        import onnxruntime as ort

        path = Path(path)
        contract = {}
        if path.is_dir():
            if precision not in MODEL_FILES:
                raise ValueError(f"precision must be 'fp32' or 'int8', got {precision!r}")
            if (path / CONTRACT_FILE).exists():
                contract = json.loads((path / CONTRACT_FILE).read_text())
            if not (path / MODEL_FILES[precision]).exists():
                raise FileNotFoundError(f"{path}: no {MODEL_FILES[precision]} in the export folder (export with --int8 for int8)")
            path = path / MODEL_FILES[precision]
        elif (path.parent / CONTRACT_FILE).exists():
            contract = json.loads((path.parent / CONTRACT_FILE).read_text())
        self.path = path
        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
            options.inter_op_num_threads = 1
        providers = ["CUDAExecutionProvider", "CPUExecutionProvider"] if str(device).startswith("cuda") else ["CPUExecutionProvider"]
        available = set(ort.get_available_providers())
        self.session = ort.InferenceSession(str(self.path), options, providers=[p for p in providers if p in available])
        self.input_name = self.session.get_inputs()[0].name
        self.output_name = self.session.get_outputs()[0].name
        self.min_samples = int(contract.get("input", {}).get("min_samples", MIN_SAMPLES))

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        batch = np.ascontiguousarray(batch, dtype=np.float32)
        return self.session.run([self.output_name], {self.input_name: batch})[0]


class EqualLengthBatcher:
    """Collects clips under keys and runs them through ``runner`` in batches of equal length (the
    models pool over their whole input, so padding would change the output).

    ``add(key, clip)`` queues a 1-D clip (a batch runs as soon as ``batch_size`` clips wait);
    ``flush()`` runs the rest; ``results`` maps each key to its (3,) output.
    """

    def __init__(self, runner, batch_size: int):
        self.runner, self.batch_size = runner, max(1, int(batch_size))
        self.pending: dict[int, list[tuple[object, np.ndarray]]] = {}
        self.results: dict[object, np.ndarray] = {}

    def add(self, key, clip: np.ndarray):
        self.pending.setdefault(len(clip), []).append((key, clip))
        if sum(len(v) for v in self.pending.values()) >= self.batch_size:
            self.flush()

    def flush(self):
        for items in self.pending.values():
            for i in range(0, len(items), self.batch_size):
                chunk = items[i : i + self.batch_size]
                out = self.runner(np.stack([clip for _, clip in chunk]))
                for (key, _), row in zip(chunk, out):
                    self.results[key] = row
        self.pending.clear()


def run_clips(runner, clips, *, batch_size: int = 16) -> np.ndarray:
    """``runner``'s outputs (len(clips), 3) on 1-D ``clips``, batched by equal length, in their order."""
    batcher = EqualLengthBatcher(runner, batch_size)
    for i, clip in enumerate(clips):
        batcher.add(i, clip)
    batcher.flush()
    return np.stack([batcher.results[i] for i in range(len(clips))]) if len(clips) else np.zeros((0, 3), np.float32)


# what a model spec names

KINDS = ("runner", "module", "onnx", "preset", "student", "teacher")


@dataclass(frozen=True)
class ModelSpec:
    """What a model spec names.

    ``kind``: "runner" (a TorchRunner or OnnxRunner), "module" (a torch module), "onnx" (an
    ``.onnx`` file or an export folder), "preset" (a student preset: untrained weights), "student"
    (a student folder or hub id), "teacher" (a teacher folder or hub id, an alias, a "+" ensemble
    or a list of members). ``source``: the object, or the name or path as given.
    """

    kind: str
    source: object


def _is_student_config(raw: dict) -> bool:
    from .models.registry import ARCHITECTURES

    if raw.get("architecture") in ARCHITECTURES:
        return True
    return any("wav2small" in str(a).lower() for a in raw.get("architectures") or [])


def _folder_kind(folder: Path) -> str:
    """"onnx", "student" or "teacher" for a model folder, from its files and config.json."""
    if (folder / FP32_FILE).exists() and not (folder / WEIGHTS_FILE).exists():
        return "onnx"
    raw = read_config(folder)
    # a student's config names its architecture; the published card's has no model_type; a
    # transformers checkpoint (every teacher) has one
    return "student" if _is_student_config(raw) or not raw.get("model_type") else "teacher"


def resolve_model(spec) -> ModelSpec:
    """What ``spec`` names: the one place the package answers this.

    In this order: a runner or torch module is itself; a list is teacher members; an ``.onnx`` file
    is itself; a string that names a model folder (one holding a config.json, weights or
    model.onnx: :func:`wav2small.hub.is_model_folder`) is that folder, an export folder or a
    student or teacher folder by its config.json, before any preset name or alias (a model folder
    called "wav2small" or "dawn" is the folder; the package's source folder, which holds no
    model, is not); then a student preset name (``wav2small students``); then a teacher alias or
    "+" ensemble; anything else is a folder or hub id, classified by its config.json (downloaded
    alone).

    >>> resolve_model("wav2small-72k")  # with no folder of that name here
    ModelSpec(kind='preset', source='wav2small-72k')
    """
    from .models.registry import PRESETS
    from .teachers import is_teacher_spec

    if isinstance(spec, (TorchRunner, OnnxRunner)):
        return ModelSpec("runner", spec)
    if isinstance(spec, torch.nn.Module):
        return ModelSpec("module", spec)
    if isinstance(spec, (list, tuple)):
        return ModelSpec("teacher", [str(s) for s in spec])
    name = str(spec)
    path = Path(name).expanduser()
    if path.is_file() and path.suffix == ".onnx":
        return ModelSpec("onnx", path)
    if is_model_folder(path):
        kind = _folder_kind(path)
        return ModelSpec(kind, path if kind == "onnx" else name)
    if name in PRESETS:
        return ModelSpec("preset", name)
    if is_teacher_spec(name):
        return ModelSpec("teacher", name)
    folder = resolve_pretrained(name, allow_patterns=("config.json",))  # a file that is no model fails here
    kind = _folder_kind(folder)
    return ModelSpec(kind, folder if kind == "onnx" else name)


def load_model(model, *, device="cpu"):
    """A runner (a callable (B, N) float32 -> (B, 3)) for what a user passes as ``model``: a runner,
    a torch module, an ``.onnx`` file, an export folder, a student or teacher folder, a hub id, a
    teacher alias or "+" ensemble (see :func:`resolve_model`).

    A student preset name is refused: its weights are untrained (``export`` and ``train`` take presets).
    """
    spec = resolve_model(model)
    if spec.kind == "runner":
        return spec.source
    if spec.kind == "module":
        return TorchRunner(spec.source, device=device)
    if spec.kind == "onnx":
        return OnnxRunner(spec.source, device=device)
    if spec.kind == "preset":
        raise ValueError(f"{spec.source}: a student preset (untrained weights), not a trained model; give a model "
                         "folder, an export folder, an .onnx file or a hub id (a folder of that name here would be used)")
    if spec.kind == "student":
        from .models import Student

        return TorchRunner(Student.from_pretrained(spec.source), device=device)
    from .teachers import load_teacher

    return TorchRunner(load_teacher(spec.source), device=device)


def load_student(model, *, options: dict | None = None):
    """(student, where it came from) for a preset name (built with config ``options``), a student
    folder or hub id, or a :class:`~wav2small.Student` object; anything else is refused.

    >>> student, source = load_student("wav2small", options={"channels": 20})
    >>> source
    'preset wav2small (untrained weights)'
    """
    from .models import Student, create_student

    spec = resolve_model(model)
    if spec.kind == "preset":
        return create_student(spec.source, **(options or {})), f"preset {spec.source} (untrained weights)"
    if options:
        raise ValueError("student options apply to a preset name, not to a model folder")
    if spec.kind == "module" and isinstance(spec.source, Student):
        return spec.source, type(spec.source).__name__
    if spec.kind == "student":
        return Student.from_pretrained(spec.source), str(spec.source)
    what = type(spec.source).__name__ if spec.kind in ("module", "runner") else f"{spec.kind} {spec.source}"
    raise ValueError(f"a wav2small student is needed here (a preset name, a student folder or hub id), got {what}")
