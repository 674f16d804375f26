"""What every model of the package promises, in one place: the audio it takes, the outputs it gives,
and the names of the ONNX tensors and of the files of an export folder.

Nothing here imports torch or onnx: the constants are read by the loader, the models, the
runners, the export and the reports alike.
"""

from __future__ import annotations

#: Input rate of every model, in Hz (16 kHz mono).
SAMPLING_RATE = 16000
#: The shortest clip any model accepts: one analysis frame of the published front-end (64 samples, 4 ms at 16 kHz).
MIN_SAMPLES = 64
#: Output order of every model, teacher and report: nominally 0..1 (MSP-Podcast's 1..7 ratings mapped by (y - 1) / 6).
LABELS = ("arousal", "dominance", "valence")

#: ONNX input: float32 (batch, samples) at SAMPLING_RATE, any gain.
INPUT_NAME = "signal"
#: ONNX output: float32 (batch, 3) in LABELS order, unclipped.
OUTPUT_NAME = "adv"

# Files of an export folder (see wav2small.export).
FP32_FILE = "model.onnx"
INT8_FILE = "model.int8.onnx"
CONTRACT_FILE = "contract.json"
CONTRACT_MARKDOWN_FILE = "CONTRACT.md"
REPORT_FILE = "report.json"
FOOTPRINT_FILE = "footprint.json"
FOOTPRINT_MARKDOWN_FILE = "footprint.md"
#: Model file -> (audonnx YAML, its batch-1 ONNX copy): the audonnx bundle of each model file.
AUDONNX_FILES = {FP32_FILE: ("model.yaml", "model.audonnx.onnx"), INT8_FILE: ("model.int8.yaml", "model.int8.audonnx.onnx")}
#: Streaming graphs of an export folder (``wav2small export --streaming``): a fixed chunk and the state in and out.
STREAM_FP32_FILE = "model.stream.onnx"
STREAM_INT8_FILE = "model.stream.int8.onnx"
#: State tensors of a streaming Wav2Small graph, in the order of its inputs (after the chunk).
STATE_NAMES = ("prenorm_stats", "ctx_samples", "ctx_frames", "ctx_l1", "ctx_l2", "ctx_l3", "ctx_pool", "ctx_l4", "ctx_l5",
               "ctx_l6", "att_max", "att_den", "att_num", "position")
#: A streaming graph's state tensor NAME is an input NAME and an output STATE_OUTPUT_PREFIX + NAME.
STATE_OUTPUT_PREFIX = "next_"
#: Metadata key of a streaming graph: JSON with its chunk, front-end and every state tensor's shape, dtype and initial value.
STREAM_METADATA = "wav2small.stream"
#: ``precision`` of an export folder -> its model file.
MODEL_FILES = {"fp32": FP32_FILE, "int8": INT8_FILE}
