"""Students: every model maps a 16 kHz waveform (B, N) to (B, 3) arousal, dominance, valence."""

from .base import Student
from .efficientformer import EfficientFormer, EfficientFormerConfig
from .mnasnet import MnasNet, MnasNetConfig
from .mobilenet import MobileNetV2, MobileNetV2Config, MobileNetV3, MobileNetV3Config, MobileNetV4, MobileNetV4Config
from .registry import create_student, list_students
from .t2t_vit import T2TViT, T2TViTConfig
from .wav2small import Wav2Small, Wav2SmallConfig

__all__ = ["EfficientFormer", "EfficientFormerConfig", "MnasNet", "MnasNetConfig", "MobileNetV2", "MobileNetV2Config",
           "MobileNetV3", "MobileNetV3Config", "MobileNetV4", "MobileNetV4Config", "Student", "T2TViT", "T2TViTConfig",
           "Wav2Small", "Wav2SmallConfig", "create_student", "list_students"]
