"""The files around an exported model: the input/output contract (contract.json for programs,
CONTRACT.md for people) and the audonnx bundle of each model file (a YAML and a batch-1 copy of the
graph, so that ``audonnx.load(DIR)`` works).
"""

from __future__ import annotations

import math
from pathlib import Path

import onnx

from ..atomic import write_json, write_text
from ..contract import (AUDONNX_FILES, CONTRACT_FILE, CONTRACT_MARKDOWN_FILE, FP32_FILE, INPUT_NAME, INT8_FILE, LABELS,
                        OUTPUT_NAME, SAMPLING_RATE)
from ..frontend import PRENORM_EPS
from ..models import Student
from .graph import save_model
from .streaming import contract_markdown, contract_section

# audonnx reshapes its input to the model's input shape and allows one dynamic axis only, so its
# bundle holds the same graph with the batch axis fixed to 1 (AUDONNX_FILES).
AUDONNX_FORMAT = "$audonnx.core.model.Model==1.0.1"


def gain_floor_db(eps: float) -> float:
    """The input RMS level (dBFS) above which the prenorm's ``eps`` moves outputs by less than about
    0.002 on the 0..1 scale: 10 log10(100 eps), where eps is 1 % of the clip's power (measured with
    bench/gain_invariance.py: 0.0017 there, 0.01 at 8 dB below, 0.1 at 20 dB below)."""
    return 10 * math.log10(100 * eps)


def write_contract(out_dir, student: Student) -> dict:
    """Write ``contract.json`` and ``CONTRACT.md``: what goes in, what comes out, and where that stops
    holding (quiet input, NaN)."""
    out_dir = Path(out_dir)
    eps = float(getattr(student.config, "prenorm_eps", PRENORM_EPS))
    floor = round(gain_floor_db(eps), 1)
    contract = {
        "input": {"name": INPUT_NAME, "dtype": "float32", "shape": ["batch", "samples"], "dynamic_axes": [0, 1],
                  "sampling_rate": SAMPLING_RATE, "channels": "mono", "min_samples": int(student.min_samples),
                  "gain": f"any above {floor:g} dBFS RMS: each clip is normalised to zero mean and unit power inside the model",
                  "prenorm_eps": eps, "gain_invariant_above_dbfs": floor,
                  "nan": "a NaN or infinite sample makes that clip's whole output NaN (other clips of the batch are unaffected)"},
        "output": {"name": OUTPUT_NAME, "dtype": "float32", "shape": ["batch", 3], "labels": list(LABELS),
                   "scale": "nominally 0..1 (MSP-Podcast 1..7 ratings mapped by (y - 1) / 6), no activation, not clipped"},
        "files": {"fp32": FP32_FILE, "int8": INT8_FILE if (out_dir / INT8_FILE).exists() else None,
                  "audonnx": {k: v[0] for k, v in AUDONNX_FILES.items() if (out_dir / v[1]).exists()}},
        "architecture": student.architecture,
    }
    streaming = contract_section(out_dir)
    if streaming:
        contract["streaming"] = streaming
    write_json(out_dir / CONTRACT_FILE, contract)
    i, o = contract["input"], contract["output"]
    write_text(out_dir / CONTRACT_MARKDOWN_FILE, f"""# ONNX contract: {student.architecture}

| | name | dtype | shape | meaning |
|---|---|---|---|---|
| input | `{i['name']}` | float32 | (batch, samples), both dynamic | mono waveform at {SAMPLING_RATE} Hz, any gain, at least {i['min_samples']} samples |
| output | `{o['name']}` | float32 | (batch, 3) | {', '.join(LABELS)}: {o['scale']} |

- Clips in one batch must have the same length: the model has no padding mask, and zero padding
  changes the result. Run clips of different lengths one by one or in equal-length groups.
- Silence or any constant signal gives one fixed output (the answer to an empty spectrum), not a
  neutral rating.
- Gain: outputs do not depend on the input's gain while the clip's RMS is above {floor:g} dBFS (changes
  below 0.002 on the 0..1 scale). Below, the normalisation's epsilon ({eps:g}, added to the clip's power)
  is no longer negligible and outputs drift towards the silence output: by about 0.01 at {floor - 8:g} dBFS,
  0.1 at {floor - 20:g} dBFS, and far below (a speech clip times 1e-30) they are the silence output. Peaks
  above about 1e18 (a clip times 1e20) overflow float32 and also give the silence output (wav2small
  refuses samples above 1e12 before they reach a model). A model folder whose config.json
  sets `prenorm_eps` to 1e-14 keeps invariance down to -120 dBFS (outputs at -20 dBFS change by about
  2e-6, at -50 dBFS by 0.002); the published card uses 1e-7.
- NaN or infinite samples: that clip's whole output is NaN (the normalisation spreads them over the
  clip); other clips of the batch are unaffected. Check inputs with `numpy.isfinite` first.
- `{FP32_FILE}` is the reference. `{INT8_FILE}` (if present) stores the network weights as int8 and
  keeps the log-mel front-end in fp32; its agreement with fp32 on held-out audio is in `report.json`.
- audonnx: `audonnx.load(DIR)` reads `model.yaml` (`model.audonnx.onnx`: the same graph with the batch
  axis fixed to 1, since audonnx allows one dynamic axis); for int8, `audonnx.load(DIR, model_file="model.int8.yaml")`.
  Call it with a 1-D signal: `model(signal, {SAMPLING_RATE})` -> (1, 3).
- onnxruntime: `session.run(["{o['name']}"], {{"{i['name']}": x}})` with `x` float32 of shape (batch, samples).
""" + contract_markdown(streaming))
    return contract


def write_audonnx_bundle(out_dir, model_file: str) -> None:
    """Write the audonnx bundle of ``model_file``: its YAML and its batch-1 copy (see ``AUDONNX_FILES``)."""
    out_dir = Path(out_dir)
    yaml_name, onnx_name = AUDONNX_FILES[model_file]
    proto = onnx.load(str(out_dir / model_file))
    for value in (proto.graph.input[0], proto.graph.output[0]):
        value.type.tensor_type.shape.dim[0].dim_value = 1
    save_model(proto, out_dir / onnx_name)
    labels = "".join(f"  - {label}\n" for label in LABELS)
    write_text(out_dir / yaml_name, f"{AUDONNX_FORMAT}:\n  path: {onnx_name}\n  labels:\n{labels}  transform: null\n")
