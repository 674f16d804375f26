"""The parity checks of an export: fp32 ONNX against torch (absolute difference), and one ONNX model
against another on held-out audio (Pearson and CCC per dimension). A failed check raises ParityError.
"""

from __future__ import annotations

import numpy as np

from ..contract import LABELS, SAMPLING_RATE
from ..metrics import concordance_cc, pearson_cc
from ..models import Student
from ..options import FP32_CHECKS
from ..runners import OnnxRunner, TorchRunner, run_clips


class ParityError(RuntimeError):
    """An exported model does not match its reference; ``report`` holds the numbers."""

    def __init__(self, message: str, report: dict):
        super().__init__(message)
        self.report = report


def check_against_torch(student: Student, onnx_path, *, atol: float = 1e-4, checks=FP32_CHECKS, seed: int = 0) -> dict:
    """Largest |ONNX - torch| over ``checks`` ((batch, seconds) pairs; default 1 to 30 s), signals of mixed gain."""
    onnx_model, torch_model = OnnxRunner(onnx_path), TorchRunner(student)
    rng = np.random.default_rng(seed)
    cases = []
    for batch, seconds in checks:
        n = int(round(seconds * SAMPLING_RATE))
        x = (rng.standard_normal((batch, n)) * 10.0 ** rng.uniform(-3, 0, (batch, 1))).astype(np.float32)
        x += np.sin(2 * np.pi * rng.uniform(80, 400, (batch, 1)) * np.arange(n) / SAMPLING_RATE).astype(np.float32)
        diff = float(np.abs(onnx_model(x) - torch_model(x)).max())
        cases.append({"batch": batch, "samples": n, "max_abs_diff": diff})
    worst = max(c["max_abs_diff"] for c in cases)
    return {"max_abs_diff": worst, "tolerance": atol, "passed": bool(worst <= atol), "cases": cases}


def compare_outputs(reference_path, candidate_path, clips: list[np.ndarray], *, min_pearson: float = 0.99,
                    min_ccc: float = 0.98) -> dict:
    """Pearson and CCC per dimension between two ONNX models' outputs on ``clips``."""
    outputs = [run_clips(OnnxRunner(path), clips) for path in (reference_path, candidate_path)]
    ref, cand = outputs
    pearson = dict(zip(LABELS, np.round(np.atleast_1d(pearson_cc(ref, cand)).astype(float), 5).tolist()))
    ccc = dict(zip(LABELS, np.round(np.atleast_1d(concordance_cc(ref, cand)).astype(float), 5).tolist()))
    passed = all(pearson[k] >= min_pearson and ccc[k] >= min_ccc for k in LABELS)
    return {"clips": len(clips), "pearson": pearson, "ccc": ccc, "max_abs_diff": float(np.abs(ref - cand).max()),
            "reference_std": dict(zip(LABELS, np.round(ref.std(axis=0), 5).tolist())),
            "thresholds": {"pearson": min_pearson, "ccc": min_ccc}, "passed": bool(passed)}
