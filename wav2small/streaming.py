"""Streaming Wav2Small: arousal, dominance and valence on a live stream, every hop, with a state whose
size does not depend on how long the stream has run, equal to the offline model on the audio so far.

How it stays exact. Every analysis frame and every conv position is computed once, when all its
inputs are final, and only the left context each layer needs is kept (2 positions per 3x3 conv, 1-2
for the max-pool). The attention pooling over time is a softmax, so it is accumulated online: a
running maximum, denominator and numerator per channel and mel band. The offline model pads its
3x3 convs with zeros at the end of the input, so the positions nearest the newest audio (about
24 ms for the card model) depend on that padding: when an output is due they are computed
*provisionally*, with the same zero padding, merged into a copy of the pooled sums, and dropped.
The input normalisation must be causal for this: ``prenorm="running"`` (see
:func:`wav2small.frontend.running_prenorm`).
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
from torch import nn

from .audio import AudioError
from .contract import STATE_NAMES, STREAM_FP32_FILE, STREAM_INT8_FILE, STREAM_METADATA
from .frontend import running_decay, running_prenorm
from .models.wav2small import Wav2Small

#: Logit of a position that does not exist (before the stream started): exp(NO_LOGIT - m) is 0.
NO_LOGIT = -1e30
#: ``position`` stops growing here (every mask is 1 long before).
POSITION_CAP = 2**30


def fold_batchnorm(conv: nn.Conv2d, norm: nn.BatchNorm2d) -> tuple[torch.Tensor, torch.Tensor]:
    """(weight, bias) of one conv equal to conv -> BatchNorm in eval mode."""
    scale = norm.weight / torch.sqrt(norm.running_var + norm.eps)
    bias = norm.bias - norm.running_mean * scale
    if conv.bias is not None:
        bias = bias + conv.bias * scale
    return (conv.weight * scale[:, None, None, None]).detach().clone(), bias.detach().clone()


class StreamingWav2Small(nn.Module):
    """The per-step computation of a streaming Wav2Small: (raw samples of whole hops, state) ->
    (next state, A/D/V or None). Pure: the state goes in and comes out as a dict of tensors.

    Args:
        model: a :class:`~wav2small.Wav2Small` (any channels, n_mels, n_fft, hop). Its weights are
            copied (BatchNorm folded into the convs) when this object is made.
        decay_seconds: time constant of the pooled estimate in seconds: a position's attention
            weight is multiplied by exp(-age / decay_seconds), so the estimate follows roughly the
            last ``decay_seconds`` (63 % of the weight for equal attention logits; 95 % within three
            times that). None: the whole stream, as the offline model.
        prenorm_seconds: time constant of the running prenorm (default: the model's).
        pool_context: l3 positions kept for the max-pool: 2 works for any step size; a fixed step
            of an even number of hops needs only the one the next window starts at.
        dtype: dtype of the running sums (prenorm statistics, attention sums): float64 for the
            Python engine, float32 for the ONNX graph.
    """

    def __init__(self, model: Wav2Small, *, decay_seconds: float | None = None, prenorm_seconds: float | None = None,
                 pool_context: int = 2, dtype: torch.dtype = torch.float64):
        super().__init__()
        if not isinstance(model, Wav2Small):
            raise ValueError(f"streaming needs a Wav2Small-family model, got {type(model).__name__}")
        if decay_seconds is not None and not decay_seconds > 0:
            raise ValueError(f"decay_seconds must be a positive number of seconds or None, got {decay_seconds!r}")
        config, vgg = model.config, model.vgg7
        if (config.depth, config.pool_after, config.norm) != (7, 3, "batch"):
            raise ValueError("streaming supports the published topology (7 conv blocks, the pool after the third, batch "
                             f"norm); this model has depth {config.depth}, pool_after {config.pool_after}, norm "
                             f"{config.norm!r} (an EvoNorm uses statistics of the whole clip and cannot stream)")
        self.config = config
        self.hop, self.n_fft, self.channels = config.hop, config.n_fft, config.channels
        self.mels, self.pooled_mels = config.n_mels, (config.n_mels + 1) // 2
        # normalised samples kept between steps: from the start of the next frame to the newest sample
        self.context_samples = config.n_fft - config.hop + (-config.n_fft) % config.hop
        self.prenorm_seconds = float(prenorm_seconds if prenorm_seconds is not None else config.prenorm_seconds)
        self.prenorm_decay = running_decay(config.hop, self.prenorm_seconds, config.sampling_rate)
        self.prenorm_eps = config.prenorm_eps
        self.decay_seconds = decay_seconds
        pooled_seconds = 2 * config.hop / config.sampling_rate  # one pooled position
        self.age_logit = pooled_seconds / decay_seconds if decay_seconds else 0.0  # logit lost per position of age
        self.pool_context, self.dtype = pool_context, dtype
        self.compute_dtype = model.adv.weight.dtype  # float32, or float64 for a model made .double()
        self.spectrogram_extractor = vgg.spectrogram_extractor
        self.logmel_extractor = vgg.logmel_extractor
        for i in range(1, 8):
            block = getattr(vgg, f"l{i}")
            weight, bias = fold_batchnorm(block.conv, block.norm)
            self.register_buffer(f"w{i}", weight)
            self.register_buffer(f"b{i}", bias)
        self.lin, self.sof, self.adv = vgg.lin, vgg.sof, model.adv
        self.eval()

    # the state

    def initial_state(self, batch: int = 1) -> dict[str, torch.Tensor]:
        """The state at the start of a stream: zeros (the offline model's left padding), the
        attention maximum at NO_LOGIT, ``position`` at the (negative) index of the first frame
        the first step computes."""
        c, m, mp = self.channels, self.mels, self.pooled_mels
        f32 = self.compute_dtype
        return {
            "prenorm_stats": torch.zeros(batch, 3, dtype=self.dtype),
            "ctx_samples": torch.zeros(batch, self.context_samples, dtype=f32),
            "ctx_frames": torch.zeros(batch, 1, 2, m, dtype=f32),
            "ctx_l1": torch.zeros(batch, c, 2, m, dtype=f32),
            "ctx_l2": torch.zeros(batch, c, 2, m, dtype=f32),
            "ctx_l3": torch.zeros(batch, c, self.pool_context, m, dtype=f32),
            "ctx_pool": torch.zeros(batch, c, 2, mp, dtype=f32),
            "ctx_l4": torch.zeros(batch, c, 2, mp, dtype=f32),
            "ctx_l5": torch.zeros(batch, c, 2, mp, dtype=f32),
            "ctx_l6": torch.zeros(batch, c, 2, mp, dtype=f32),
            "att_max": torch.full((batch, c, mp), NO_LOGIT, dtype=self.dtype),
            "att_den": torch.zeros(batch, c, mp, dtype=self.dtype),
            "att_num": torch.zeros(batch, c, mp, dtype=self.dtype),
            "position": torch.full((batch,), self.first_position, dtype=torch.int64),
        }

    @property
    def first_position(self) -> int:
        """Index of the first frame a stream's first step computes: frames before 0 straddle the
        zeros before the stream and are masked."""
        return -(self.context_samples // self.hop)

    @property
    def lookahead_frames(self) -> int:
        """Frames between the newest frame and the last pooled position that no later audio can
        change (3 convs, the pool's stride-2 window and 4 convs at half the rate)."""
        return 3 + 1 + 2 * 4

    # one step

    def forward(self, samples: torch.Tensor, state: dict[str, torch.Tensor], *, parity: int, readout: bool,
                partial: torch.Tensor | None = None):
        """Advance the stream by whole hops and, with ``readout``, compute A/D/V for all audio so far.

        Args:
            samples: (B, K * hop) raw samples, K >= 0 whole hops.
            state: the state before these samples.
            parity: (number of frames before this step - 3) mod 2, i.e. (position - 3) mod 2 while
                the position is below POSITION_CAP: it fixes where the stride-2 max-pool windows start.
            readout: compute the output (provisional right edge included); the stream must hold at
                least one analysis frame (n_fft samples) by then.
            partial: (B, r) raw samples after ``samples``, r < hop, only read by the readout: the
                offline model's view of an input that ends inside a hop.

        Returns:
            (next state, (B, 3) A/D/V, or None without ``readout``).
        """
        hop = self.hop
        n = samples.shape[1] // hop
        if not n and not readout:
            return state, None
        p = state["position"]  # (B,) index of this step's first frame
        y, prenorm_stats = running_prenorm(samples, hop=hop, a=self.prenorm_decay, state=state["prenorm_stats"], eps=self.prenorm_eps)
        seq = torch.cat([state["ctx_samples"], y], dim=1)  # (B, R + n hop)
        if n:
            frames = self.logmel_extractor(self.spectrogram_extractor(seq))  # (B, 1, n, M)
            frames = frames * self._mask(p, n)
        else:
            frames = state["ctx_frames"][:, :, :0]
        ctx_samples = seq[:, seq.shape[1] - self.context_samples:]

        # each layer's output: its n committed positions, then the provisional ones (with a readout)
        h = frames
        if readout and partial is not None and partial.shape[1]:  # provisional frames: only from a partial hop
            y_part, _ = running_prenorm(partial, hop=hop, a=self.prenorm_decay, state=prenorm_stats, eps=self.prenorm_eps)
            tail_seq = torch.cat([ctx_samples, y_part], dim=1)
            count = (tail_seq.shape[1] - self.n_fft) // hop + 1 if tail_seq.shape[1] >= self.n_fft else 0
            if count:
                tail = self.logmel_extractor(self.spectrogram_extractor(tail_seq[:, : (count - 1) * hop + self.n_fft]))
                h = torch.cat([frames, tail], dim=2)

        h, ctx_frames = self._conv(1, state["ctx_frames"], h, n, readout, p - 1)
        h, ctx_l1 = self._conv(2, state["ctx_l1"], h, n, readout, p - 2)
        h, ctx_l2 = self._conv(3, state["ctx_l2"], h, n, readout, p - 3)
        # pooled positions in frame units (twice their index): floor((p - 3) / 2) without a division
        pool_first = p - 3 - parity
        h, ctx_l3 = self._pool(state["ctx_l3"], h, n, readout, parity, pool_first)
        n = (parity + n) // 2  # committed pooled positions
        h, ctx_pool = self._conv(4, state["ctx_pool"], h, n, readout, pool_first - 2, stride=2)
        h, ctx_l4 = self._conv(5, state["ctx_l4"], h, n, readout, pool_first - 4, stride=2)
        h, ctx_l5 = self._conv(6, state["ctx_l5"], h, n, readout, pool_first - 6, stride=2)
        h, ctx_l6 = self._conv(7, state["ctx_l6"], h, n, readout, pool_first - 8, stride=2)
        # attention logits and values of committed and provisional positions in one pass (one int8 scale)
        logits, values = self.sof(h).to(self.dtype), self.lin(h).to(self.dtype)
        attention = self._attend((state["att_max"], state["att_den"], state["att_num"]), logits[:, :, :n],
                                 values[:, :, :n], pool_first - 8)
        next_state = {
            "prenorm_stats": prenorm_stats, "ctx_samples": ctx_samples, "ctx_frames": ctx_frames, "ctx_l1": ctx_l1,
            "ctx_l2": ctx_l2, "ctx_l3": ctx_l3, "ctx_pool": ctx_pool, "ctx_l4": ctx_l4, "ctx_l5": ctx_l5,
            "ctx_l6": ctx_l6, "att_max": attention[0], "att_den": attention[1], "att_num": attention[2],
            "position": torch.clamp(p + samples.shape[1] // hop, max=POSITION_CAP),
        }
        if not readout:
            return next_state, None
        _, den, num = self._attend(attention, logits[:, :, n:], values[:, :, n:], pool_first - 8 + 2 * n)
        pooled = (num / den).to(self.compute_dtype)  # (B, C, M'): the attention-pooled features
        features = torch.cat([pooled, torch.bmm(pooled, pooled.transpose(1, 2))], dim=2)  # Gram across channels
        return next_state, self.adv(features.flatten(1))

    # the layers

    def _mask(self, first: torch.Tensor, count: int, stride: int = 1) -> torch.Tensor:
        """(B, 1, count, 1): 1 where position j exists (its index first + stride * j is >= 0), else 0.
        Pooled positions are counted in frames (stride 2), so no index needs a division."""
        index = first[:, None] + stride * torch.arange(count, device=first.device)
        return (index >= 0).to(torch.float32)[:, None, :, None]

    def _conv(self, i: int, context, h, n: int, readout: bool, first, stride: int = 1):
        """Block l{i} over [2 context | h | one zero]: valid along time, mel padded. ``h`` holds the
        layer's input, its first ``n`` positions committed. Returns (output, next context): the
        output's first n positions are committed, the rest provisional."""
        seq = torch.cat([context, h, torch.zeros_like(context[:, :, :1])] if readout else [context, h], dim=2)
        out = torch.relu(nn.functional.conv2d(seq, getattr(self, f"w{i}"), getattr(self, f"b{i}"), padding=(0, 1)))
        return out * self._mask(first, out.shape[2], stride), seq[:, :, n : n + 2]

    def _pool(self, context, h, n: int, readout: bool, parity: int, first):
        """MaxPool2d(3, stride 2, pad 1) over [context | h | one zero]; windows start at odd absolute
        l3 positions (2u - 1), exactly as the offline pool's grid. Returns (output, next context)."""
        c, t = context.shape[2], h.shape[2] - n  # t provisional l3 positions
        if c - 1 - parity < 0:
            raise ValueError("a one-position max-pool context needs an even number of committed l3 positions")
        seq = torch.cat([context, h, torch.zeros_like(context[:, :, :1])] if readout else [context, h], dim=2)
        # the offline pool has ceil(frames / 2) outputs, frames = committed l3 positions + t
        count = (parity + n + t + 1) // 2 if readout else (parity + n) // 2
        out = nn.functional.max_pool2d(seq[:, :, c - 1 - parity:], 3, stride=2, padding=(0, 1))[:, :, :count]
        return out * self._mask(first, count, 2), seq[:, :, n : n + c]

    def _attend(self, sums, logits, values, first):
        """Merge positions (B, C, n, M') of attention ``logits`` and ``values`` into the online softmax
        (max, den, num); ``first``: twice the index of the first position."""
        maximum, den, num = sums
        n = logits.shape[2]
        if n == 0:
            return sums
        mask = self._mask(first, n, 2).to(self.dtype)
        if self.age_logit:
            age = (n - 1 - torch.arange(n, device=logits.device, dtype=self.dtype)) * self.age_logit
            logits = logits - age[None, None, :, None]
            maximum = maximum - self.age_logit * n
        logits = torch.where(mask > 0, logits, NO_LOGIT)
        new_max = torch.maximum(maximum, logits.amax(dim=2))
        weight = torch.exp(logits - new_max[:, :, None]) * mask
        scale = torch.exp(maximum - new_max)
        return new_max, den * scale + weight.sum(dim=2), num * scale + (weight * values).sum(dim=2)


# the stream a user feeds


class Estimate(NamedTuple):
    """One output of a stream: ``time`` in seconds of audio received, then arousal, dominance and
    valence (nominally 0..1, unclipped) of the audio so far."""

    time: float
    arousal: float
    dominance: float
    valence: float


class Stream:
    """Arousal, dominance and valence of a live 16 kHz stream, every ``hop`` seconds.

    Feed chunks of any size (1 sample, 37, 512, a second); every time the audio received reaches a
    multiple of ``hop`` an :class:`Estimate` comes out. Each estimate equals the offline model run
    on all audio received so far (``prenorm="running"``; within float rounding): the newest 24 ms
    (card model) are seen through the offline model's end-of-input zero padding, provisionally,
    and settle when more audio arrives. The state (about 15 KB for the card model in this engine)
    does not grow with the stream; at most one second of raw audio waits between steps.

    Args:
        model: a :class:`~wav2small.Wav2Small`, a preset name (untrained weights), a student folder
            or hub id, or a streaming ONNX export (a folder with ``model.stream.onnx``, or the
            ``.onnx`` file). A model trained with ``prenorm="utterance"`` (the published one) is
            streamed with the running prenorm instead (a warning says so): its estimates then
            approximate the published model; a student distilled with ``prenorm="running"``
            streams exactly.
        hop: seconds between estimates (default 0.5). An ONNX export runs whole chunks (32 ms by
            default), so there the hop is rounded to a whole number of chunks (0.5 s -> 0.512 s).
        decay_seconds: follow roughly the last ``decay_seconds`` instead of the whole stream (see
            :class:`StreamingWav2Small`); None (default) pools the whole stream, as the offline model.
            An ONNX export has it built in (``wav2small export --streaming --decay-seconds``).
        prenorm_seconds: time constant of the running prenorm (default: the model's, 2 s).
        precision: ``fp32`` or ``int8``: which file of a streaming ONNX export folder to run.
        threads: onnxruntime threads for an ONNX export (default: 1).

    >>> stream = Stream(Wav2Small(prenorm="running"), hop=0.5)
    >>> [e.time for e in stream.feed(np.zeros(16000, np.float32))]
    [0.5, 1.0]
    """

    def __init__(self, model, *, hop: float = 0.5, decay_seconds: float | None = None, prenorm_seconds: float | None = None,
                 precision: str = "fp32", threads: int = 1):
        path = stream_onnx_file(model, precision)
        if path is not None:
            if decay_seconds is not None or prenorm_seconds is not None:
                raise ValueError(f"{path}: decay_seconds and prenorm_seconds are fixed when a stream is exported "
                                 "(wav2small export --streaming --decay-seconds ...)")
            self.backend = OnnxSteps(path, threads=threads)
        else:
            student = load_stream_model(model)
            if student.config.prenorm != "running":
                warnings.warn("this model was trained with the per-utterance prenorm, which a stream cannot compute; it is "
                              "streamed with the running prenorm, so its estimates approximate the offline model's. Distil "
                              "with prenorm=running for a stream equal to the offline model.", UserWarning, stacklevel=2)
            self.backend = TorchSteps(StreamingWav2Small(student, decay_seconds=decay_seconds, prenorm_seconds=prenorm_seconds))
        self.sampling_rate = self.backend.sampling_rate
        if not hop > 0:
            raise ValueError(f"hop must be a positive number of seconds, got {hop!r}")
        self.hop_samples = max(1, int(round(hop * self.sampling_rate)))
        if not self.backend.exact_partial:  # whole chunks only
            self.hop_samples = max(1, round(self.hop_samples / self.backend.unit)) * self.backend.unit
        self.hop = self.hop_samples / self.sampling_rate
        self._step_samples = max(self.sampling_rate, self.backend.unit)  # raw audio waiting at most 1 s
        self.reset()

    def reset(self) -> None:
        """Start a new stream: the state as at the beginning, nothing received."""
        self.backend.reset()
        self.samples = 0  # received so far
        self._pending: list[np.ndarray] = []
        self._pending_samples = 0
        self._next_output = self.hop_samples
        self._last_output = 0

    @property
    def state(self) -> dict:
        """The state tensors (torch tensors, or numpy arrays for an ONNX export)."""
        return self.backend.state

    @property
    def state_bytes(self) -> int:
        """Bytes of the state tensors (the same after a minute as after a day)."""
        return sum(t.nbytes for t in self.state.values())

    def feed(self, chunk, sampling_rate: int | None = None) -> list[Estimate]:
        """Append ``chunk`` (1-D float samples at 16 kHz) and return the estimates that fell due.

        Raises:
            AudioError: NaN or infinite samples, a wrong sampling rate, integer or non-1-D samples;
                the stream is left as it was.
        """
        x = self._check(chunk, sampling_rate)
        estimates = []
        start = 0
        while start < len(x):
            take = min(len(x) - start, self._next_output - self.samples)
            self._pending.append(x[start : start + take])
            self._pending_samples += take
            self.samples += take
            start += take
            if self.samples == self._next_output:
                estimate = self._advance(readout=True)
                if estimate is not None:
                    estimates.append(estimate)
                self._next_output += self.hop_samples
            elif self._pending_samples >= self._step_samples:
                self._advance(readout=False)
        return estimates

    def flush(self) -> Estimate | None:
        """The estimate for all audio received so far, if it was not just given (end of a stream).

        Nothing is committed: feeding may go on afterwards. None when the stream holds less than
        one analysis frame or nothing new came since the last estimate. An ONNX export answers for
        the audio up to its last whole chunk (the rest, under 32 ms, waits for more audio).
        """
        return self._advance(readout=True)

    def _advance(self, *, readout: bool) -> Estimate | None:
        unit = self.backend.unit
        pending = np.concatenate(self._pending) if self._pending else np.zeros(0, self.backend.sample_dtype)
        whole = len(pending) // unit * unit
        upto = self.samples if self.backend.exact_partial else self.samples - (len(pending) - whole)
        # the offline model needs one analysis frame; an estimate already given is not repeated
        readout = readout and upto >= self.backend.n_fft and upto != self._last_output
        adv = self.backend.step(pending[:whole], readout=readout, partial=pending[whole:])
        self._pending = [pending[whole:]] if whole < len(pending) else []
        self._pending_samples = len(pending) - whole
        if adv is None:
            return None
        self._last_output = upto
        a, d, v = (float(value) for value in adv)
        return Estimate(upto / self.sampling_rate, a, d, v)

    def _check(self, chunk, sampling_rate) -> np.ndarray:
        if sampling_rate is not None and sampling_rate != self.sampling_rate:
            raise AudioError("stream", f"sampling rate {sampling_rate} Hz, but the stream runs at {self.sampling_rate} Hz: "
                                       "resample before feeding")
        if hasattr(chunk, "detach"):
            chunk = chunk.detach().cpu().numpy()
        x = np.asarray(chunk)
        if x.ndim != 1:
            raise AudioError("stream", f"expected a 1-D chunk of mono samples, got shape {x.shape}")
        if not np.issubdtype(x.dtype, np.floating):
            raise AudioError("stream", f"expected float samples, got dtype {x.dtype}; convert 16-bit PCM with x / 32768")
        if not np.all(np.isfinite(x)):
            bad = int(np.count_nonzero(~np.isfinite(x)))
            raise AudioError("stream", f"chunk holds {bad} NaN or infinite samples; nothing was fed, the stream is unchanged")
        return np.ascontiguousarray(x, dtype=self.backend.sample_dtype)


class TorchSteps:
    """Runs a :class:`StreamingWav2Small` for :class:`Stream`: whole hops, the state as torch tensors."""

    exact_partial = True  # a readout inside a hop is exact

    def __init__(self, engine: StreamingWav2Small):
        self.engine = engine
        self.unit, self.n_fft, self.sampling_rate = engine.hop, engine.n_fft, engine.config.sampling_rate
        self.sample_dtype = np.float64 if engine.compute_dtype == torch.float64 else np.float32
        self.reset()

    def reset(self) -> None:
        self.state = self.engine.initial_state()
        self.frames = self.engine.first_position  # the state's position, without its cap

    def step(self, samples: np.ndarray, *, readout: bool, partial: np.ndarray) -> np.ndarray | None:
        with torch.inference_mode():
            self.state, adv = self.engine(torch.from_numpy(samples)[None], self.state, parity=(self.frames - 3) % 2,
                                          readout=readout, partial=torch.from_numpy(partial)[None])
        self.frames += len(samples) // self.unit
        return None if adv is None else adv[0].numpy()


class OnnxSteps:
    """Runs a streaming ONNX export (``model.stream.onnx``) for :class:`Stream`, chunk by chunk; the
    state as numpy arrays, initialised from the model's metadata."""

    exact_partial = False  # whole chunks only
    sample_dtype = np.float32

    def __init__(self, path, *, threads: int = 1):
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        meta = self.session.get_modelmeta().custom_metadata_map
        if STREAM_METADATA not in meta:
            raise ValueError(f"{path}: not a streaming export of wav2small (no {STREAM_METADATA!r} in its metadata)")
        self.info = json.loads(meta[STREAM_METADATA])
        self.unit, self.n_fft, self.sampling_rate = self.info["chunk"], self.info["n_fft"], self.info["sampling_rate"]
        self.outputs = [o.name for o in self.session.get_outputs()]
        self.reset()

    def reset(self) -> None:
        self.state = {name: np.full(s["shape"], s["initial"], dtype=s["dtype"]) for name, s in self.info["states"].items()}
        self.adv = None

    def step(self, samples: np.ndarray, *, readout: bool, partial: np.ndarray) -> np.ndarray | None:
        for start in range(0, len(samples), self.unit):
            result = self.session.run(self.outputs, {"chunk": samples[None, start : start + self.unit], **self.state})
            self.adv = result[0][0]
            self.state = {name: value for name, value in zip(self.info["states"], result[1:])}
        return self.adv if readout else None


def load_stream_model(model) -> Wav2Small:
    """A Wav2Small from an object, a preset name, a student folder or a hub id."""
    from .runners import load_student

    student, _ = load_student(model)
    if not isinstance(student, Wav2Small):
        raise ValueError(f"streaming needs a Wav2Small-family model, got {type(student).__name__}")
    return student.eval()


def stream_onnx_file(model, precision: str = "fp32") -> Path | None:
    """The streaming graph ``model`` names when it names an ONNX export (see
    :func:`wav2small.runners.resolve_model`): the ``.onnx`` file itself, or in an export folder
    ``model.stream.onnx`` (``precision`` fp32) or ``model.stream.int8.onnx`` (int8); else None."""
    from .runners import resolve_model

    files = {"fp32": STREAM_FP32_FILE, "int8": STREAM_INT8_FILE}
    if precision not in files:
        raise ValueError(f"precision must be 'fp32' or 'int8', got {precision!r}")
    spec = resolve_model(model)
    if spec.kind != "onnx":
        return None
    path = Path(spec.source)
    if path.is_dir():
        path = path / files[precision]
        if not path.exists():
            raise FileNotFoundError(f"{path.parent}: no {path.name}; export with --streaming"
                                    + (" --int8" if precision == "int8" else ""))
    return path
