"""Arousal, dominance and valence of a live stream, one CSV row per hop, written as it goes.

INPUT is `-` (raw 16 kHz mono signed 16-bit little-endian PCM on stdin, e.g. from arecord), a
.raw / .pcm file in that format, or an audio file (WAV, FLAC, ...; resampled to 16 kHz). Each row
(time = seconds of audio received, arousal, dominance, valence) is the model's answer for all audio
so far; at the end of the input one more row covers the tail. A student distilled with
`--student-option prenorm=running` streams exactly like its offline self; a model with the
published per-utterance prenorm is streamed with a running one (a note on stderr says so).
MODEL may also be a streaming ONNX export (`wav2small export --streaming`): its folder (with
--precision fp32 or int8) or its .onnx file; it runs whole 32 ms chunks, so the hop is rounded to
whole chunks.

examples:
  arecord -f S16_LE -r 16000 -c 1 -t raw | wav2small stream - --model runs/w2s/best
  wav2small stream speech.wav --model runs/w2s/best --hop 1 --decay-seconds 10 > adv.csv
  wav2small stream - --model export/w2s --precision int8 < speech.raw
"""

from __future__ import annotations

import sys
import time

HELP = "A/D/V of a live stream (raw PCM on stdin or a file), one CSV row per hop"

#: Raw PCM file extensions (anything else is read as an audio file).
RAW_EXTENSIONS = (".raw", ".pcm")


def add_arguments(parser):
    parser.add_argument("input", metavar="INPUT", help="'-' for raw s16le 16 kHz mono PCM on stdin, a .raw/.pcm file, or an audio file")
    parser.add_argument("--model", default="audeering/wav2small",
                        help="student folder, preset name, hub id, or streaming ONNX export folder / file (default: %(default)s)")
    parser.add_argument("--precision", choices=("fp32", "int8"), default="fp32",
                        help="which model of a streaming ONNX export folder to run (default: %(default)s)")
    parser.add_argument("--hop", type=float, default=0.5, help="seconds between rows (default: %(default)s)")
    parser.add_argument("--decay-seconds", type=float,
                        help="follow roughly the last N seconds instead of the whole stream (default: the whole stream)")
    parser.add_argument("--chunk-size", type=int, default=512, help="samples read at a time (default: %(default)s = 32 ms)")
    parser.add_argument("--threads", type=int, default=1, help="CPU threads (default: %(default)s)")
    parser.add_argument("--verbose", "-v", action="store_true", help="real-time factor on stderr every 10 s of audio and at the end")


def chunks_of(path: str, chunk_size: int):
    """Float32 chunks of ``chunk_size`` samples from stdin (``-``), a raw PCM file or an audio file."""
    import numpy as np

    if path == "-" or path.lower().endswith(RAW_EXTENSIONS):
        stream = sys.stdin.buffer if path == "-" else open(path, "rb")
        try:
            leftover = b""
            while True:
                data = stream.read(2 * chunk_size)
                if not data:
                    break
                data, leftover = leftover + data, b""
                if len(data) % 2:
                    data, leftover = data[:-1], data[-1:]
                yield np.frombuffer(data, dtype="<i2").astype(np.float32) / 32768.0
        finally:
            if stream is not sys.stdin.buffer:
                stream.close()
        if leftover:
            print("wav2small stream: note: the input ended in the middle of a sample (odd byte count); "
                  "the last byte was ignored", file=sys.stderr)
        return
    from ..audio import load_audio

    x = load_audio(path)
    for start in range(0, len(x), chunk_size):
        yield x[start : start + chunk_size]


def run(args) -> int:
    import warnings

    import torch

    from ..streaming import Stream

    if args.chunk_size < 1:
        raise ValueError(f"--chunk-size must be at least 1 sample, got {args.chunk_size}")
    torch.set_num_threads(args.threads)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        stream = Stream(args.model, hop=args.hop, decay_seconds=args.decay_seconds, precision=args.precision,
                        threads=args.threads)
    for warning in caught:
        print(f"wav2small stream: note: {warning.message}", file=sys.stderr)
    out = sys.stdout
    out.write("time,arousal,dominance,valence\n")
    out.flush()
    busy, reported = 0.0, 0.0

    def write(estimates):
        for e in estimates:
            out.write(f"{e.time:.3f},{e.arousal:.6f},{e.dominance:.6f},{e.valence:.6f}\n")
        if estimates:
            out.flush()

    def report(final: bool = False):
        seconds = stream.samples / stream.sampling_rate
        rtf = busy / seconds if seconds else 0.0
        print(f"wav2small stream: {seconds:.1f} s of audio, {busy:.2f} s of compute: real-time factor {rtf:.4f}"
              + (" (done)" if final else ""), file=sys.stderr)

    for chunk in chunks_of(args.input, args.chunk_size):
        started = time.perf_counter()
        estimates = stream.feed(chunk)
        busy += time.perf_counter() - started
        write(estimates)
        if args.verbose and stream.samples / stream.sampling_rate >= reported + 10.0:
            reported = stream.samples / stream.sampling_rate
            report()
    started = time.perf_counter()
    last = stream.flush()
    busy += time.perf_counter() - started
    write([last] if last is not None else [])
    if args.verbose:
        report(final=True)
    return 0
