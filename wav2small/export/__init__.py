"""ONNX export of a student: fp32 and int8 models, the input/output contract, the audonnx bundle, a
footprint report and parity checks (fp32 against torch, int8 against fp32 on held-out audio) that
fail loudly.

Layout of an export folder ``DIR``::

    model.onnx              fp32, input ``signal`` (batch, samples) float32 16 kHz -> ``adv`` (batch, 3)
    model.int8.onnx         with int8: weights int8, activations int8 where it pays, log-mel front-end fp32
    model.stream.onnx       with streaming (Wav2Small): a fixed chunk and the state in and out (streaming)
    model.stream.int8.onnx  with streaming and int8: the same in int8
    model.yaml              audonnx bundle: ``audonnx.load(DIR)`` (model.audonnx.onnx, batch fixed to 1)
    model.int8.yaml         the same for the int8 model (``audonnx.load(DIR, model_file="model.int8.yaml")``)
    contract.json           the input/output contract, machine-readable; CONTRACT.md for people
    report.json             parity numbers and the choices made
    footprint.json/.md      parameters, bytes, MACs, activation memory, per-layer table

The steps live in the modules of this package: ``graph`` (torch to a small ONNX graph), ``quantize``
(int8), ``calibration`` (audio for calibration and the check), ``checks`` (parity), ``bundle``
(contract and audonnx bundle), ``footprint`` (what the model costs on a device) and ``streaming``
(the stateful streaming graphs).
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np

from ..atomic import write_json, write_text
from ..contract import (AUDONNX_FILES, FOOTPRINT_FILE, FOOTPRINT_MARKDOWN_FILE, FP32_FILE, INT8_FILE, REPORT_FILE,
                        STREAM_FP32_FILE, STREAM_INT8_FILE)
from ..models import Wav2Small
from ..options import ExportConfig
from ..runners import load_student
from .bundle import gain_floor_db, write_audonnx_bundle, write_contract
from .calibration import calibration_clips
from .checks import ParityError, check_against_torch, compare_outputs
from .footprint import footprint, footprint_markdown
from .graph import compact_constants, exporter_versions, frontend_nodes, save_model, strip_metadata, torch_to_onnx
from .quantize import quantize
from .streaming import export_stream

__all__ = ["ParityError", "calibration_clips", "check_against_torch", "compare_outputs", "export_onnx", "export_stream", "footprint",
           "footprint_markdown", "gain_floor_db", "quantize", "torch_to_onnx", "write_audonnx_bundle", "write_contract"]


def export_onnx(model, out_dir, **options) -> dict:
    """Export a student to ``out_dir`` as ONNX, check it, and write the contract and reports.

    Args:
        model: a preset name (see :func:`wav2small.list_students`), a student folder or hub id
            (``Student.from_pretrained``), or a :class:`~wav2small.Student` object.
        out_dir: folder to write (created; files of an earlier export are replaced).
        options: the fields of :class:`wav2small.options.ExportConfig` (int8, calibration,
            per_channel, activations, reduce_range, clip_seconds, max_clips, holdout, min_pearson,
            min_ccc, atol, checks, seed, streaming, chunk, decay_seconds, progress), with their defaults
            and meaning there. ``streaming`` also writes the stateful graphs of a Wav2Small, checked
            against the torch streaming engine (fp32) and, streamed over the held-out clips, against
            the fp32 graph (int8, the same thresholds).

    Returns:
        the report (also written as ``report.json``).

    Raises:
        ParityError: a check failed; ``report.json`` is written, the failing model is not.

    Example (it needs files or a download, so it is not run as a doctest)::

        report = export_onnx("wav2small", "export/w2s", int8=True, calibration="speech/")
        report["int8"]["ccc"]
        # -> {'arousal': 0.998, 'dominance': 0.997, 'valence': 0.998}
    """
    config = ExportConfig(**options)
    int8, per_channel, activations, atol = config.int8, config.per_channel, config.activations, config.atol
    student, source = load_student(model)
    student.eval()
    if config.streaming and not isinstance(student, Wav2Small):
        raise ValueError(f"--streaming needs a Wav2Small-family student, got {student.architecture}")
    if int8:  # read the audio first: a bad folder fails before minutes of work
        calib, held, data_info = calibration_clips(config.calibration, clip_seconds=config.clip_seconds,
                                                   max_clips=config.max_clips, holdout=config.holdout, seed=config.seed,
                                                   progress=config.progress)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    for stale in [INT8_FILE, STREAM_FP32_FILE, STREAM_INT8_FILE, *(name for names in AUDONNX_FILES.values() for name in names)]:
        (out_dir / stale).unlink(missing_ok=True)

    proto = torch_to_onnx(student)
    frontend = frontend_nodes(proto)
    strip_metadata(proto)
    report = {
        "model": {"source": source, "architecture": student.architecture, "config": student.config_dict(),
                  "parameters": student.num_parameters(), "state_values": student.num_state_values()},
        "exporter": exporter_versions(),
        "files": {},
    }
    fp32 = compact_constants(proto)
    save_model(fp32, out_dir / FP32_FILE)
    report["fp32_parity"] = check_against_torch(student, out_dir / FP32_FILE, atol=atol, checks=config.checks)
    if not report["fp32_parity"]["passed"]:
        (out_dir / FP32_FILE).unlink()
        _write_json(out_dir / REPORT_FILE, report)
        raise ParityError(f"fp32 ONNX differs from torch by {report['fp32_parity']['max_abs_diff']:.3g} "
                          f"(tolerance {atol:g}); see {out_dir / REPORT_FILE}", report)
    write_audonnx_bundle(out_dir, FP32_FILE)

    if int8:
        quantized, choices = quantize(proto, frontend, calib, per_channel=per_channel, activations=activations,
                                      reduce_range=config.reduce_range)
        int8_model = compact_constants(quantized)
        with tempfile.TemporaryDirectory() as tmp:
            save_model(int8_model, Path(tmp) / INT8_FILE)
            check = compare_outputs(out_dir / FP32_FILE, Path(tmp) / INT8_FILE, held, min_pearson=config.min_pearson,
                                    min_ccc=config.min_ccc)
            report["int8"] = {"per_channel": per_channel, "activations": activations, "reduce_range": config.reduce_range,
                              **choices, "data": data_info, **check}
            if check["passed"]:
                save_model(int8_model, out_dir / INT8_FILE)
        if not check["passed"]:
            _write_json(out_dir / REPORT_FILE, report)
            raise ParityError(f"int8 model misses the check against fp32 on {check['clips']} held-out clips: "
                              f"Pearson {check['pearson']}, CCC {check['ccc']} (need >= {config.min_pearson} and >= {config.min_ccc} "
                              f"per dimension); model.int8.onnx not written, see {out_dir / REPORT_FILE}", report)
        write_audonnx_bundle(out_dir, INT8_FILE)

    if config.streaming:
        try:
            report["streaming"] = export_stream(student, out_dir, int8=int8, calibration=calib if int8 else (),
                                                held_out=held if int8 else (), chunk=config.chunk,
                                                decay_seconds=config.decay_seconds, per_channel=per_channel,
                                                activations=activations, min_pearson=config.min_pearson,
                                                min_ccc=config.min_ccc, reduce_range=config.reduce_range)
        except ParityError as error:
            report.update(error.report)
            _write_json(out_dir / REPORT_FILE, report)
            raise

    contract = write_contract(out_dir, student)
    files = [FP32_FILE] + ([INT8_FILE] if int8 else []) + ([STREAM_FP32_FILE] if config.streaming else []) \
        + ([STREAM_INT8_FILE] if config.streaming and int8 else [])
    prints = {name: footprint(out_dir / name) for name in files}
    _write_json(out_dir / FOOTPRINT_FILE, prints)
    title = (f"{student.architecture} ({source}): {student.num_parameters():,} trainable parameters, "
             f"{student.num_state_values():,} state-dict values")
    write_text(out_dir / FOOTPRINT_MARKDOWN_FILE, footprint_markdown(prints, title=title))
    report["files"] = {p.name: p.stat().st_size for p in sorted(out_dir.iterdir()) if p.is_file() and p.name != REPORT_FILE}
    report["contract"] = contract
    _write_json(out_dir / REPORT_FILE, report)
    return report


def _write_json(path, data) -> None:
    write_json(path, data, default=_json_default)


def _json_default(value):
    if isinstance(value, (np.floating, np.integer)):
        return value.item()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")
