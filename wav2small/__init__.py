"""wav2small: distil large speech-emotion models into tiny students (arousal, dominance, valence).

The public names below are imported on first use (PEP 562), so ``import wav2small`` and
``wav2small --help`` stay fast and load torch only when a model is built or run;
``wav2small.predict(...)`` and ``from wav2small import predict`` work as usual.
"""

import sys
import types
from importlib import import_module

from ._version import __version__

#: Public name -> the module of this package that defines it.
_PUBLIC = {
    "AudioError": "audio",
    "load_audio": "audio",
    "Corpus": "corpora",
    "csv_corpus": "corpora",
    "label_store_corpus": "corpora",
    "msp_podcast": "corpora",
    "open_corpus": "corpora",
    "Evaluation": "evaluate",
    "evaluate": "evaluate",
    "export_onnx": "export",
    "LabelStore": "store",
    "concordance_cc": "metrics",
    "mean_absolute_error": "metrics",
    "pearson_cc": "metrics",
    "EfficientFormer": "models",
    "MnasNet": "models",
    "MobileNetV2": "models",
    "MobileNetV3": "models",
    "MobileNetV4": "models",
    "T2TViT": "models",
    "Student": "models",
    "Wav2Small": "models",
    "create_student": "models",
    "list_students": "models",
    "TrainConfig": "options",
    "predict": "predict",
    "OnnxRunner": "runners",
    "TorchRunner": "runners",
    "load_model": "runners",
    "Estimate": "streaming",
    "Stream": "streaming",
    "DawnTeacher": "teachers",
    "EnsembleTeacher": "teachers",
    "OdysseyTeacher": "teachers",
    "load_teacher": "teachers",
    "train": "train",
}
__all__ = sorted(_PUBLIC)


def __getattr__(name: str):
    if name not in _PUBLIC:
        raise AttributeError(f"module 'wav2small' has no attribute {name!r}")
    value = getattr(import_module(f".{_PUBLIC[name]}", __name__), name)
    globals()[name] = value  # the next lookup finds it directly
    return value


def __dir__():
    return sorted({*globals(), *__all__})


class _Package(types.ModuleType):
    """This package's module type. Importing a submodule sets the package attribute of its name:
    ``import wav2small.predict`` would make ``wav2small.predict`` the module, not the function.
    The functions named like their modules (predict, evaluate, train) keep their names."""

    def __setattr__(self, name, value):
        if isinstance(value, types.ModuleType) and _PUBLIC.get(name) == name:
            return
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package
