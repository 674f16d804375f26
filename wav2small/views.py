"""Reinforced views: augmented versions of a clip (crop position, gain, mixing or MixUp with another
clip, reverberation, noise) described by a small JSON-able dict from which :func:`render_view`
rebuilds bit-exactly the audio a teacher heard.

A view's ``params`` hold every file read (file, start, end in seconds), every linear gain actually
applied and the seed of anything generated (noise, a synthetic room response), so a student can
replay the teacher's input for every epoch without running the teacher again. Rendering is
elementwise float32 arithmetic on what the ``source`` returns, plus, for reverberation, one FFT
convolution whose arithmetic depends on nothing but its inputs: the same parameters give the same
samples, bit for bit, on the same platform.

Example (it needs files or a download, so it is not run as a doctest)::

    params = {"file": "a.wav", "start": 0.0, "end": 4.0, "samples": 64000, "gain": 0.5}
    audio = render_view(params)
"""

from __future__ import annotations

import json
import math
import zlib

import numpy as np

from .audio import MAX_SECONDS, AudioError, audio_duration, check_span, read_segment
from .contract import SAMPLING_RATE
from .options import MAX_RT60, ViewSettings

NOISE_COLOURS = ("white", "pink", "brown")
# Pink noise: a 3-pole IIR approximation of a 1/f spectrum (J. O. Smith, "Spectral Audio Signal Processing").
_PINK_B = (0.049922035, -0.095993537, 0.050612699, -0.004408786)
_PINK_A = (1.0, -2.494956002, 2.017265875, -0.522189400)
_BROWN_POLE = 0.995
#: Longest room impulse response read from a file (seconds): the tail beyond is below audibility in rooms.
MAX_RIR_SECONDS = 2.0
_TAIL_DELAY = 40  # samples (2.5 ms) between the direct sound of a synthetic room response and its diffuse tail


def view_seed(seed: int, file: str, start_sample: int, view: int) -> int:
    """The seed of one view: a function of the job seed, the clip and the view index only, so a
    resumed or re-sharded job draws the same views."""
    entropy = [int(seed) & 0xFFFFFFFF, zlib.crc32(str(file).encode()), int(start_sample), int(view)]
    return int(np.random.SeedSequence(entropy).generate_state(1, np.uint64)[0])


def _default_source(file, start, end) -> np.ndarray:
    return read_segment(file, start, end)


def _fit(x: np.ndarray, n: int, *, tile: bool = False) -> np.ndarray:
    """Exactly n samples: trimmed, zero-padded at the end, or (noise) repeated."""
    x = np.asarray(x, dtype=np.float32).reshape(-1)
    if len(x) >= n:
        return x[:n]
    if tile and len(x):
        return np.resize(x, n).astype(np.float32, copy=False)
    return np.concatenate([x, np.zeros(n - len(x), np.float32)])


def generated_noise(colour: str, seed: int, n: int) -> np.ndarray:
    """n samples of roughly unit-variance white, pink or brown noise from ``seed`` (float32)."""
    from scipy.signal import lfilter

    white = np.random.default_rng(seed).standard_normal(n)
    if colour == "white":
        noise = white
    elif colour == "pink":
        noise = lfilter(_PINK_B, _PINK_A, white) * 8.0  # the filter's output variance is about 1/64
    elif colour == "brown":
        noise = lfilter([math.sqrt(1 - _BROWN_POLE**2)], [1.0, -_BROWN_POLE], white)
    else:
        raise ValueError(f"unknown noise colour {colour!r}; use one of {NOISE_COLOURS}")
    return noise.astype(np.float32)


def synthetic_room_response(rt60: float, drr_db: float, seed: int) -> np.ndarray:
    """A room impulse response (float64, rt60 seconds long): a unit direct sound, then from 2.5 ms
    on Gaussian noise decaying by 60 dB over ``rt60`` seconds, its energy ``drr_db`` below the direct
    sound's."""
    n = max(_TAIL_DELAY + 1, int(round(rt60 * SAMPLING_RATE)))
    t = np.arange(n - _TAIL_DELAY) / SAMPLING_RATE
    tail = np.random.default_rng(seed).standard_normal(n - _TAIL_DELAY) * np.exp(-3 * math.log(10) * t / rt60)
    response = np.zeros(n)
    response[0] = 1.0
    response[_TAIL_DELAY:] = tail * math.sqrt(10 ** (-drr_db / 10) / np.sum(tail**2))
    return response


def room_response(reverb: dict, source) -> np.ndarray:
    """The impulse response of a view's ``reverb`` parameters (read from a file, or synthetic), scaled
    to unit energy (float64); silence stays silence."""
    if "file" in reverb:
        response = np.asarray(_read(source, reverb), dtype=np.float64)
    else:
        response = synthetic_room_response(float(reverb["rt60"]), float(reverb["drr_db"]), int(reverb["seed"]))
    energy = float(np.sum(response**2))
    return response / math.sqrt(energy) if energy > 0 else response


def reverberate(x: np.ndarray, response: np.ndarray) -> np.ndarray:
    """``x`` convolved with ``response``, cut to the length of ``x`` (float32)."""
    from scipy.signal import fftconvolve

    return fftconvolve(x.astype(np.float64), response)[: len(x)].astype(np.float32)


def _read(source, part: dict) -> np.ndarray:
    return source(part["file"], part["start"], part["end"])


def _check_part(part, what: str, source) -> None:
    """A read of a view (the crop, its mixing partner or its noise file): a file and a finite stretch."""
    if not isinstance(part, dict) or not isinstance(part.get("file"), str) or part.get("end") is None:
        raise AudioError(source, f"view parameters: {what} names no file and stretch (file, start, end)")
    check_span(part["file"], part.get("start"), part["end"])


def _check_gain(part: dict, key: str, source) -> None:
    gain = part.get(key)
    if gain is not None and (not isinstance(gain, (int, float)) or isinstance(gain, bool) or not math.isfinite(gain)):
        raise AudioError(source, f"view parameters: {key} {gain!r} is not a finite number")


def check_view(params) -> dict:
    """``params`` (a dict or its JSON string, as in a label store's ``params`` column) as a dict if
    it describes a view :func:`render_view` can build, else AudioError naming the file: every read
    a finite stretch of a named file, ``samples`` the crop's own length (so nothing larger is
    allocated), gains finite, generated noise of a known colour."""
    try:
        params = json.loads(params) if isinstance(params, str) else params
    except ValueError:
        raise AudioError("label store row", "view parameters are not valid JSON") from None
    source = params.get("file", "label store row") if isinstance(params, dict) else "label store row"
    _check_part(params, "the crop", source)
    _check_gain(params, "gain", source)
    if "samples" in params:
        samples, span = params["samples"], int(round(params["end"] * SAMPLING_RATE)) - int(round(params["start"] * SAMPLING_RATE))
        if not isinstance(samples, int) or isinstance(samples, bool) or samples != span or samples > MAX_SECONDS * SAMPLING_RATE:
            raise AudioError(source, f"view parameters: samples {samples!r} is not the crop's length ({span} samples)")
    for key in ("mix", "noise", "reverb"):
        part = params.get(key)
        if not part:
            continue
        if key == "noise" and "file" not in part:
            if part.get("colour") not in NOISE_COLOURS or not _is_int(part.get("seed")):
                raise AudioError(source, f"view parameters: generated noise needs a colour of {NOISE_COLOURS} and an integer seed")
        elif key == "reverb" and "file" not in part:
            rt60, drr = part.get("rt60"), part.get("drr_db")
            if not (_is_number(rt60) and 0 < rt60 <= MAX_RT60 and _is_number(drr) and _is_int(part.get("seed"))):
                raise AudioError(source, f"view parameters: a synthetic room response needs rt60 in (0, {MAX_RT60}] s, "
                                         "a finite drr_db and an integer seed")
        else:
            _check_part(part, f"its {key}", source)
            if key == "reverb" and part["end"] - part["start"] > MAX_RIR_SECONDS + 1e-9:
                raise AudioError(source, f"view parameters: its room response is longer than {MAX_RIR_SECONDS} s")
        if key != "reverb":
            _check_gain(part, "gain", source)
    return params


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def view_files(params: dict) -> list[str]:
    """Every file a view reads: its crop's, its mixing partner's, its room response's, its noise file's."""
    parts = (params, params.get("mix"), params.get("reverb"), params.get("noise"))
    return [part["file"] for part in parts if part and "file" in part]


def render_view(params, source=None) -> np.ndarray:
    """Rebuild the audio of a view from its parameters, bit for bit.

    Args:
        params: dict (or its JSON string) as stored in a label store's ``params`` column: ``file``,
            ``start``, ``end`` (seconds) and ``samples`` of the crop; optional ``gain`` (linear),
            ``mix`` (``file``/``start``/``end`` of a second clip and its linear ``gain``),
            ``reverb`` (``file``/``start``/``end`` of a room impulse response, or ``rt60``
            (seconds), ``drr_db`` and ``seed`` of a synthetic one) and ``noise``
            (``file``/``start``/``end`` of a noise file, or ``colour`` and ``seed`` of generated
            noise, and its linear ``gain``). ``snr_db`` and ``mixup`` (MixUp's ratio) entries are
            informative only.
        source: ``source(file, start, end) -> float32 array`` of clean 16 kHz audio; every read
            goes through it (default :func:`wav2small.audio.read_segment`), so audio can be served
            from a cache.

    Returns:
        float32 array of ``samples`` samples at 16 kHz: (gain * crop + mix gain * partner), convolved
        with the unit-energy room response when there is one, + noise gain * noise.

    Raises:
        AudioError: parameters that describe no view (see :func:`check_view`), or a file that
            cannot be read.
    """
    params = check_view(params)
    source = source or _default_source
    n = int(params["samples"]) if "samples" in params else None
    x = _read(source, params)
    n = len(x) if n is None else n
    y = _fit(x, n)
    if params.get("gain") is not None:
        y = y * np.float32(params["gain"])
    mix = params.get("mix")
    if mix:
        y = y + _fit(_read(source, mix), n) * np.float32(mix["gain"])
    if params.get("reverb"):
        y = reverberate(y, room_response(params["reverb"], source))
    noise = params.get("noise")
    if noise:
        if "file" in noise:
            z = _fit(_read(source, noise), n, tile=True)
        else:
            z = generated_noise(noise["colour"], int(noise["seed"]), n)
        y = y + z * np.float32(noise["gain"])
    return np.ascontiguousarray(y, dtype=np.float32)


class _CachedSource:
    """Remembers what it read, so drawing a view reads each stretch once and renders from memory."""

    def __init__(self, source):
        self.source, self.cache = source, {}

    def __call__(self, file, start, end):
        key = (str(file), float(start), float(end))
        if key not in self.cache:
            self.cache[key] = self.source(file, start, end)
        return self.cache[key]


def _energy(x: np.ndarray) -> float:
    return float(np.mean(np.square(x, dtype=np.float64))) if len(x) else 0.0


def _gain_for_snr(signal_energy: float, other: np.ndarray, snr_db: float) -> float:
    """Linear gain that puts ``other`` snr_db below a signal of the given mean energy."""
    other_energy = _energy(other)
    if other_energy <= 0:
        return 0.0
    return math.sqrt(max(signal_energy, 1e-10) / (other_energy * 10 ** (snr_db / 10)))


def _random_stretch(rng, duration: float, n: int, sr: int = SAMPLING_RATE) -> tuple[float, float]:
    """A random stretch of n samples (or the whole file if shorter) on the sample grid, in seconds."""
    total = int(round(duration * sr))
    if total <= n:
        return 0.0, total / sr
    first = int(rng.integers(0, total - n + 1))
    return first / sr, (first + n) / sr


def _draw_partner(rng, clip: dict, partners, n: int, source, duration) -> tuple[dict, np.ndarray] | None:
    """A random stretch of n samples of another clip (trying up to 8 partners: a bad or
    too-short one is passed over) as (its read, its audio), or None."""
    for _ in range(8):
        file, start, end = partners[int(rng.integers(len(partners)))]
        if str(file) == str(clip["file"]):
            continue
        try:
            region = (start or 0.0, end if end is not None else duration(file))
            a, b = _random_stretch(rng, region[1] - region[0], n)
            mix = {"file": str(file), "start": region[0] + a, "end": region[0] + b}
            return mix, _fit(_read(source, mix), n)
        except AudioError:
            continue
    return None


def _draw_room(rng, settings: ViewSettings, rir_files, source, duration) -> dict | None:
    """The ``reverb`` parameters of a view: the start of a room response file (trying up to 8; a
    silent or unreadable one is passed over; None if none serves), or a synthetic response."""
    if not rir_files:
        return {"rt60": float(rng.uniform(*settings.rt60)), "drr_db": float(rng.uniform(*settings.drr_db)),
                "seed": int(rng.integers(2**63))}
    for _ in range(8):
        file = rir_files[int(rng.integers(len(rir_files)))]
        try:
            samples = min(int(round(duration(file) * SAMPLING_RATE)), int(MAX_RIR_SECONDS * SAMPLING_RATE))
            reverb = {"file": str(file), "start": 0.0, "end": samples / SAMPLING_RATE}
            if np.any(_read(source, reverb)):
                return reverb
        except AudioError:
            continue
    return None


def make_view(clip: dict, view: int, *, seed: int = 0, settings: ViewSettings | None = None, partners=(),
              noise_files=(), rir_files=(), source=None, duration=None) -> tuple[dict, np.ndarray]:
    """Draw view ``view`` of a clip and return ``(params, audio)``; ``audio == render_view(params, source)``.

    Args:
        clip: ``file``, ``start``, ``end`` (seconds, the clean crop) and ``region_start``,
            ``region_end`` (seconds, the stretch of the file the crop may move within).
        view: 0 is the clean crop; 1, 2, ... are augmented.
        seed: the job seed; the view's own seed is derived from it, the clip and ``view``.
        settings: :class:`ViewSettings`.
        partners: candidate clips to mix with, as (file, start, end) with end None for whole files.
        noise_files: noise files to draw from (generated noise when empty).
        rir_files: room impulse response files to draw from (synthetic responses when empty).
        source: as in :func:`render_view`.
        duration: ``duration(file) -> seconds``, for whole-file partners, noise and room responses (default: header).
    """
    settings = settings or ViewSettings()
    source = _CachedSource(source or _default_source)
    duration = duration or audio_duration
    sr = SAMPLING_RATE
    first, last = int(round(clip["start"] * sr)), int(round(clip["end"] * sr))
    n = last - first
    s = view_seed(seed, clip["file"], first, view)
    params = {"file": clip["file"], "start": clip["start"], "end": clip["end"], "samples": n, "seed": s}
    if view == 0:
        return params, render_view(params, source)

    # every draw of a kind that is off (probability 0) is skipped, so turning a kind on changes
    # nothing for the others' draws when it is off: views of a store labelled earlier are drawn the same
    rng = np.random.default_rng(s)
    low = max(int(round(clip["region_start"] * sr)), first - int(settings.shift * n))
    high = min(int(round(clip["region_end"] * sr)) - n, first + int(settings.shift * n))
    begin = int(rng.integers(low, high + 1)) if high > low else first
    params.update(start=begin / sr, end=(begin + n) / sr)
    gain = 10 ** (rng.uniform(*settings.gain_db) / 20)
    params["gain"] = gain
    crop = _fit(_read(source, params), n)
    signal_energy = _energy(crop) * gain**2

    if partners and settings.mixup_prob and rng.random() < settings.mixup_prob:
        lam = float(rng.beta(settings.mixup_alpha, settings.mixup_alpha))
        lam = max(lam, 1 - lam)  # the crop dominates: the view stays its clip's
        drawn = _draw_partner(rng, clip, partners, n, source, duration)
        if drawn is not None:
            mix, partner = drawn
            crop_energy, partner_energy = _energy(crop), _energy(partner)
            a = lam
            b = (1 - lam) * math.sqrt(crop_energy / partner_energy) if partner_energy > 0 else 0.0  # the partner at the crop's level
            mixture = _energy(crop.astype(np.float64) * a + partner.astype(np.float64) * b)
            scale = math.sqrt(crop_energy / mixture) if mixture > 0 else 1.0  # the mixture at the crop's level
            params["gain"] = gain * a * scale
            params["mix"] = {**mix, "gain": gain * b * scale, "mixup": lam}
    elif partners and rng.random() < settings.mix_prob:
        snr = float(rng.uniform(*settings.mix_snr_db))
        drawn = _draw_partner(rng, clip, partners, n, source, duration)
        if drawn is not None:
            mix, partner = drawn
            params["mix"] = {**mix, "snr_db": snr, "gain": _gain_for_snr(signal_energy, partner, snr)}

    if settings.reverb_prob and rng.random() < settings.reverb_prob:
        reverb = _draw_room(rng, settings, rir_files, source, duration)
        if reverb is not None:
            params["reverb"] = reverb
    if "mix" in params or "reverb" in params:
        signal_energy = _energy(render_view(params, source))

    if rng.random() < settings.noise_prob:
        snr = float(rng.uniform(*settings.noise_snr_db))
        noise = None
        for _ in range(8 if noise_files else 0):
            file = noise_files[int(rng.integers(len(noise_files)))]
            try:
                a, b = _random_stretch(rng, duration(file), n)
                noise = {"file": str(file), "start": a, "end": b, "snr_db": snr}
                z = _fit(_read(source, noise), n, tile=True)
                break
            except AudioError:
                noise = None
        if noise is None:
            noise = {"colour": NOISE_COLOURS[int(rng.integers(len(NOISE_COLOURS)))], "seed": int(rng.integers(2**63)), "snr_db": snr}
            z = generated_noise(noise["colour"], noise["seed"], n)
        noise["gain"] = _gain_for_snr(signal_energy, z, snr)
        params["noise"] = noise
    return params, render_view(params, source)
