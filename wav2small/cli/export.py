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

With --c DIR the streaming int8 model also becomes a C99 bundle for microcontrollers (int8
kernels, no heap, no OS): compiled here and compared with onnxruntime, and, with the Cortex-M4
toolchain and QEMU installed, measured (flash, RAM, instructions per second of audio) into the
footprint report. MODEL may then also be an existing streaming int8 export.

examples:
  wav2small export runs/w2s/best --out export/w2s --int8 --calibration speech/
  wav2small export runs/w2s/best --out export/w2s --int8 --calibration speech/ --streaming --activations all
  wav2small export runs/w2s/best --out export/w2s --int8 --calibration speech/ --c export/w2s/c
"""

from __future__ import annotations

import sys

HELP = "export a student to fp32 / int8 ONNX with parity checks and footprint report"


def add_arguments(parser):
    from ..options import CBundleConfig, ExportConfig, add_options

    parser.add_argument("model", help="preset name, student folder or hub id (with --c alone: also a streaming int8 ONNX "
                                      "graph or the export folder holding one)")
    parser.add_argument("--out", help="export folder to write (not needed when --c converts an existing export)")
    add_options(parser, ExportConfig)  # one flag per field of ExportConfig
    mcu = parser.add_argument_group("microcontroller: the streaming int8 model as a C99 bundle")
    mcu.add_argument("--c", metavar="DIR", help="write the C bundle to DIR (implies --streaming --int8 --activations all "
                     "--reduce-range); MODEL may also be an existing streaming int8 export")
    add_options(mcu, CBundleConfig)


def run(args) -> int:
    from ..export import ParityError, export_onnx
    from ..options import ExportConfig, options_from_arguments

    if args.c and _is_stream_export(args.model):
        return _write_c(args.model, args)
    if not args.out:
        raise ValueError("--out is required (the export folder to write)")
    if args.c:  # what the C engine runs: the streaming graph, int8 throughout, weights exact on every CPU
        args.streaming, args.int8, args.activations, args.reduce_range = True, True, "all", True
    try:
        report = export_onnx(args.model, args.out, **options_from_arguments(ExportConfig, args), progress=True)
    except ParityError as error:
        print(f"wav2small export: parity check failed: {error}", file=sys.stderr)
        return 1
    print(summary(report))
    print(f"reports: {args.out}/report.json (all parity numbers), {args.out}/footprint.md, contract: {args.out}/CONTRACT.md")
    return _write_c(args.out, args) if args.c else 0


def _is_stream_export(model) -> bool:
    from pathlib import Path

    path = Path(model)
    return path.suffix == ".onnx" and path.is_file() or path.is_dir() and any(path.glob("model.stream*.onnx"))


def _write_c(source, args) -> int:
    from ..export.c import export_c
    from ..options import CBundleConfig, options_from_arguments

    report = export_c(source, args.c, **options_from_arguments(CBundleConfig, args))
    print(c_summary(report))
    print(f"C bundle: {args.c} (README.md: API and build commands; report.json: all numbers)")
    return 0


def c_summary(report: dict) -> str:
    lines = []
    if "exactness" in report:
        e = report["exactness"]
        lines.append(f"C on this computer vs onnxruntime, {e['signal_seconds']:g} s test signal: {e['identical_results']} of "
                     f"{e['results']} results identical, max |diff| {e['max_abs_diff']:.2g}")
    device = report.get("device", {})
    if "skipped" in device:
        lines.append(f"Cortex-M4 measurement skipped: {device['skipped']}")
    elif device:
        lines.append(f"Cortex-M4 (QEMU): flash {device['flash_bytes'] / 1024:.1f} KiB, RAM {device['ram_bytes'] / 1024:.1f} KiB "
                     f"(stack {device['peak_stack_bytes']:,} B), {device['instructions_per_second'] / 1e6:.1f} M instructions "
                     f"per second of audio ({device.get('instructions_per_mac', 0):.2f} per MAC): real time at about "
                     f"{device['real_time_mhz']:.0f} MHz")
    return "\n".join(lines)


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
