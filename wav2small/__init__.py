"""wav2small: distil large speech-emotion models into tiny students (arousal, dominance, valence)."""

from ._version import __version__
from .audio import AudioError, load_audio
from .corpora import Corpus, csv_corpus, label_store_corpus, msp_podcast, open_corpus
from .evaluate import Evaluation, evaluate
from .export import export_onnx
from .metrics import concordance_cc, mean_absolute_error, pearson_cc
from .models import MobileNetV3, MobileNetV4, Student, Wav2Small, create_student, list_students
from .predict import predict
from .runners import OnnxRunner, TorchRunner, load_model
from .store import LabelStore
from .streaming import Estimate, Stream
from .teachers import DawnTeacher, EnsembleTeacher, OdysseyTeacher, load_teacher
from .train import TrainConfig, train

__all__ = [
    "AudioError",
    "Corpus",
    "DawnTeacher",
    "EnsembleTeacher",
    "Estimate",
    "Evaluation",
    "LabelStore",
    "MobileNetV3",
    "MobileNetV4",
    "OdysseyTeacher",
    "OnnxRunner",
    "Stream",
    "Student",
    "TorchRunner",
    "TrainConfig",
    "Wav2Small",
    "concordance_cc",
    "create_student",
    "csv_corpus",
    "evaluate",
    "export_onnx",
    "label_store_corpus",
    "list_students",
    "load_audio",
    "load_model",
    "load_teacher",
    "mean_absolute_error",
    "msp_podcast",
    "open_corpus",
    "pearson_cc",
    "predict",
    "train",
]
