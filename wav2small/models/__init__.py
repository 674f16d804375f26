"""Students: every model maps a 16 kHz waveform (B, N) to (B, 3) arousal, dominance, valence."""

from .base import Student
from .mobilenet import MobileNetV3, MobileNetV3Config, MobileNetV4, MobileNetV4Config
from .registry import create_student, list_students
from .wav2small import Wav2Small, Wav2SmallConfig

__all__ = ["MobileNetV3", "MobileNetV3Config", "MobileNetV4", "MobileNetV4Config", "Student", "Wav2Small", "Wav2SmallConfig",
           "create_student", "list_students"]
