"""Export a student to ONNX: fp32 model.onnx, optionally int8 model.int8.onnx, with checks and reports.

MODEL is a preset name (wav2small, wav2small-72k, ...: untrained weights), a student folder
(e.g. a training run's best/) or a hub id. The --out folder receives model.onnx (input `signal`: float32
(batch, samples) of 16 kHz mono audio, any gain; output `adv`: (batch, 3) arousal, dominance,
valence, nominally 0..1), the audonnx bundle (model.yaml), contract.json / CONTRACT.md, report.json and
footprint.json / footprint.md (parameters, bytes, MACs per second of audio, activation memory).

Every export checks fp32 ONNX against torch (max |difference| <= --atol over batches and 1-30 s
inputs). With --int8 the network body is quantized (the log-mel front-end stays fp32), calibrated
on --calibration audio; a part of those files is held out and int8 must reach Pearson and CCC
with fp32 of at least --min-pearson / --min-ccc per dimension there. A failed check exits with
status 1, prints the numbers and writes no failing model.

With --streaming (Wav2Small students) the folder also gets model.stream.onnx and, with --int8,
model.stream.int8.onnx: stateful graphs for live audio (CONTRACT.md lists the chunk and every
state tensor), checked against the torch streaming engine and, streamed over the held-out clips,
int8 against fp32.

examples:
  wav2small export runs/w2s/best --out export/w2s --int8 --calibration speech/
  wav2small export runs/w2s/best --out export/w2s --int8 --calibration speech/ --streaming --activations all
"""

from __future__ import annotations

import sys

HELP = "export a student to fp32 / int8 ONNX with parity checks and footprint report"


def add_arguments(parser):
    from ..options import ExportConfig, add_options

    parser.add_argument("model", help="preset name, student folder or hub id")
    parser.add_argument("--out", required=True, help="export folder to write")
    add_options(parser, ExportConfig)  # one flag per field of ExportConfig


def run(args) -> int:
    from ..export import ParityError, export_onnx
    from ..options import ExportConfig, options_from_arguments

    try:
        report = export_onnx(args.model, args.out, **options_from_arguments(ExportConfig, args), progress=True)
    except ParityError as error:
        print(f"wav2small export: parity check failed: {error}", file=sys.stderr)
        return 1
    print(summary(report))
    print(f"reports: {args.out}/report.json (all parity numbers), {args.out}/footprint.md, contract: {args.out}/CONTRACT.md")
    return 0


def summary(report: dict) -> str:
    lines = [f"fp32 vs torch: max |diff| {report['fp32_parity']['max_abs_diff']:.2g} (<= {report['fp32_parity']['tolerance']:g})"]
    if "int8" in report:
        q = report["int8"]
        full, weight_only = len(q["int8_activation_nodes"]), len(q["int8_weight_only_nodes"])
        lines.append(f"int8: weights of all {full + weight_only} weighted layers; activations of {full} of them "
                     f"(--activations {q['activations']}"
                     + (": only layers of 16+ channels, where int8 kernels are faster; the others compute in fp32"
                        if q["activations"] == "auto" else "") + "); the log-mel front-end stays fp32")
        lines.append(f"int8 vs fp32 on {q['clips']} held-out clips: "
                     + ", ".join(f"{k} Pearson {q['pearson'][k]:.4f} CCC {q['ccc'][k]:.4f}" for k in q["pearson"]))
        skipped = q["data"].get("skipped") or {}
        lines += [f"calibration skipped {file}: {problem}" for file, problem in skipped.items()]
    if "streaming" in report:
        s = report["streaming"]
        lines.append(f"streaming fp32 vs torch engine: max |diff| {s['fp32_parity']['max_abs_diff']:.2g} over "
                     f"{s['fp32_parity']['chunks']} chunks of {s['chunk']} samples (<= {s['fp32_parity']['tolerance']:g})")
        if "int8" in s:
            q = s["int8"]
            lines.append(f"streaming int8 vs fp32 on {q['clips']} held-out clips ({q['estimates']} estimates): "
                         + ", ".join(f"{k} Pearson {q['pearson'][k]:.4f} CCC {q['ccc'][k]:.4f}" for k in q["pearson"]))
    lines.append("files: " + ", ".join(f"{name} {size:,} B" for name, size in report["files"].items() if name.endswith(".onnx")))
    return "\n".join(lines)
