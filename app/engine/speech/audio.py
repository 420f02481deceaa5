"""Audio in: a WAV file's bytes → mono samples → 16 kHz → log-mel frames. The speech family's one front end,
the same function at training and at serving.

Reading. A WAV is a RIFF file: "RIFF" size "WAVE", then chunks (a 4-byte name, a 4-byte little-endian size, the
body, a pad byte when the size is odd). We walk the chunks ourselves, because every size in them is a claim:
the data chunk's declared size must fit in the bytes we hold (a stream writer that could not seek back, such as
`espeak-ng --stdout`, leaves 0x7FFFF000 there: a lying header) and divide into whole frames. Nothing is ever
allocated from a claim; the samples are a view of the bytes received. Integer PCM (WAVE_FORMAT_PCM) is read
by the standard `wave` module; 32-bit float (WAVE_FORMAT_IEEE_FLOAT) and WAVE_FORMAT_EXTENSIBLE (a PCM or
float subformat by GUID), which Python 3.11's `wave` refuses, are read from our own parse of the fmt chunk.
Accepted: PCM 8 (unsigned), 16, 24 or 32-bit, or 32-bit float; 1 or 2 channels (stereo is averaged to mono);
the common rates from 8 to 48 kHz (RATES); at most MAX_SECONDS. Samples are scaled to [-1, 1) by the
integer's full scale.

Resampling to 16 kHz: polyphase, by the reduced ratio up/down (44.1 kHz → 16 kHz is 160/441). One low-pass FIR
at the upsampled rate: a windowed sinc with its cutoff at the lower Nyquist (1/max(up, down) of the upsampled
Nyquist), 2·10·max(up, down) + 1 taps, a Kaiser window with β = 5 (stop band about −55 dB), scaled to unit gain
at DC; output n is the filter centred on input time n/16000. This is the design of
`scipy.signal.resample_poly`'s defaults, computed here with numpy (tests/engine/test_audio.py holds it against
scipy). Only the rates in RATES are taken: any integer rate could be, but an odd one such as 47,999 Hz reduces
to 16,000/47,999 and a filter of a million taps.

Frames: torch.stft over 25 ms Hann windows (400 samples, periodic Hann, no zero padding: bins 40 Hz apart) every
10 ms (160 samples), not centred: frame t covers samples [160 t, 160 t + 400), so a clip of N samples has
1 + (N − 400) // 160 frames and frame t is heard from 10·t ms. The power spectrum goes through N_MELS = 40
triangular mel filters (the HTK mel scale, mel(f) = 2595 log10(1 + f / 700), N_MELS + 2 edges equally spaced in
mel from 0 Hz to 8 kHz, each triangle peaking at 1 on its centre, no area normalisation), then a natural log
with a floor of LOG_FLOOR. Forty bands, not eighty: number words need the formants and the fricatives, which 40
bands resolve (the common choice for recognisers before large models); 80 would double the first layer's input
weights and the spectrogram's rows on the page for detail these small networks do not use.
"""

from __future__ import annotations

import io
import struct
import wave
from dataclasses import dataclass
from functools import cache
from math import gcd

import numpy as np
import torch
from numpy.typing import NDArray
from torch import Tensor

from app.engine.errors import EngineError, InputTooLong

SAMPLE_RATE = 16_000  # the front end's rate: every clip is resampled to it
RATES = (8_000, 11_025, 12_000, 16_000, 22_050, 24_000, 32_000, 44_100, 48_000)
MAX_SECONDS = 10.0
SILENT_PEAK = 1e-3  # −60 dBFS: a clip whose loudest sample is quieter than this is silent
WINDOW = 400  # 25 ms at 16 kHz
HOP = 160  # 10 ms at 16 kHz
N_MELS = 40
F_MIN, F_MAX = 0.0, SAMPLE_RATE / 2
LOG_FLOOR = 1e-6  # the power a mel band is floored at before the log: digital silence reads log(1e-6) ≈ −13.8
KAISER_BETA = 5.0
HALF_TAPS_PER_RATIO = 10  # the resampling filter has 2 · 10 · max(up, down) + 1 taps

WAVE_FORMAT_PCM = 0x0001
WAVE_FORMAT_IEEE_FLOAT = 0x0003
WAVE_FORMAT_EXTENSIBLE = 0xFFFE
# A subformat GUID is the format code in its first two bytes followed by these 14 (KSDATAFORMAT_SUBTYPE_*).
GUID_TAIL = bytes.fromhex("000000001000800000aa00389b71")


class BadAudio(EngineError):
    """Bytes that are not a WAV this front end reads, with the problem named."""


class NotWav(BadAudio):
    """Not a RIFF/WAVE file, or a WAV without the chunks it needs."""


class LyingHeader(BadAudio):
    """A header whose sizes the bytes do not bear out: data declared beyond the end, or not whole frames."""


class NoChannels(BadAudio):
    def __init__(self) -> None:
        super().__init__("the WAV header declares 0 channels: there is no audio to read")


class UnsupportedAudio(BadAudio):
    """A well-formed WAV in a format this front end does not take (a rate, a sample size, an encoding)."""


class SilentAudio(BadAudio):
    def __init__(self, peak: float) -> None:
        super().__init__(
            f"the audio is silent: its loudest sample is {20 * np.log10(max(peak, 1e-12)):.0f} dBFS, under "
            f"{20 * np.log10(SILENT_PEAK):.0f} dBFS. Record closer to the microphone or check that it is on."
        )
        self.peak = peak


class AudioTooShort(BadAudio):
    def __init__(self, samples: int) -> None:
        super().__init__(
            f"the audio has {samples} samples at {SAMPLE_RATE} Hz; one frame needs {WINDOW} (25 ms). Record longer."
        )
        self.samples = samples


class AudioTooLong(InputTooLong):
    """Over MAX_SECONDS: a 413 like any input over its length (app/web/errors.py maps InputTooLong)."""

    def __init__(self, frames: int, rate: int, limit_seconds: float = MAX_SECONDS) -> None:
        EngineError.__init__(
            self,
            f"the audio lasts {frames / rate:.2f} s; the limit is {limit_seconds:g} s. Send a shorter clip.",
        )
        self.steps = frames
        self.limit = int(limit_seconds * rate)
        self.seconds = frames / rate


@dataclass(frozen=True)
class Audio:
    """A WAV as read: mono samples in [-1, 1) at the file's own rate, and what the header said."""

    samples: NDArray[np.float32]  # (N,)
    rate: int
    channels: int  # in the file, before mixing to mono
    bits: int  # per sample, in the file
    encoding: str  # "pcm" or "float"

    @property
    def seconds(self) -> float:
        return len(self.samples) / self.rate


@dataclass(frozen=True)
class _Format:
    code: int  # WAVE_FORMAT_PCM or WAVE_FORMAT_IEEE_FLOAT, the subformat's for WAVE_FORMAT_EXTENSIBLE
    channels: int
    rate: int
    block_align: int
    bits: int
    extensible: bool


def _chunks(data: bytes) -> dict[bytes, tuple[int, int]]:
    """The first chunk of each name: name → (offset of its body, its declared size). Sizes are checked against
    the bytes by the caller for the chunks it reads; a chunk that runs past the end must be the last."""
    if len(data) < 12 or data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        found = data[:4].decode("latin-1") if data[:4].isascii() else data[:4].hex()
        raise NotWav(f"not a WAV file: a WAV starts with 'RIFF' and 'WAVE'; this starts with {found!r}")
    chunks: dict[bytes, tuple[int, int]] = {}
    offset = 12
    while offset + 8 <= len(data):
        name, size = data[offset : offset + 4], struct.unpack_from("<I", data, offset + 4)[0]
        chunks.setdefault(name, (offset + 8, size))
        offset += 8 + size + (size & 1)
    return chunks


def seal(stream: bytes) -> bytes:
    """A WAV written to a stream, its sizes left as placeholders (`espeak-ng --stdout` cannot seek back), with
    its true sizes: the data chunk taken to run to the end, in whole frames. For our own synthesiser's output
    only; read_wav never guesses a size."""
    chunks = _chunks(stream)
    fmt = _format(stream, chunks)
    if b"data" not in chunks:
        raise NotWav("not a WAV file: it has no 'data' chunk holding samples")
    start = chunks[b"data"][0]
    size = (len(stream) - start) // fmt.block_align * fmt.block_align
    sealed = bytearray(stream[: start + size])
    struct.pack_into("<I", sealed, 4, len(sealed) - 8)
    struct.pack_into("<I", sealed, start - 4, size)
    return bytes(sealed)


def _format(data: bytes, chunks: dict[bytes, tuple[int, int]]) -> _Format:
    if b"fmt " not in chunks:
        raise NotWav("not a WAV file: it has no 'fmt ' chunk saying how its samples are written")
    start, size = chunks[b"fmt "]
    if size < 16 or start + size > len(data):
        raise LyingHeader(f"the 'fmt ' chunk declares {size} bytes; it needs 16 and {len(data) - start} follow")
    code, channels, rate, _byte_rate, block_align, bits = struct.unpack_from("<HHIIHH", data, start)
    extensible = code == WAVE_FORMAT_EXTENSIBLE
    if extensible:
        if size < 40:
            raise LyingHeader(f"a WAVE_FORMAT_EXTENSIBLE 'fmt ' chunk has 40 bytes; this one declares {size}")
        guid = data[start + 24 : start + 40]
        if guid[2:] != GUID_TAIL:
            raise UnsupportedAudio(f"WAVE_FORMAT_EXTENSIBLE with subformat {guid.hex()}: only PCM and float are read")
        code = struct.unpack_from("<H", guid)[0]
    if channels == 0:
        raise NoChannels()
    if code not in (WAVE_FORMAT_PCM, WAVE_FORMAT_IEEE_FLOAT):
        raise UnsupportedAudio(f"WAV format code {code:#06x}: only PCM (1) and 32-bit float (3) are read")
    if channels > 2:
        raise UnsupportedAudio(f"the WAV has {channels} channels: only mono or stereo is read")
    if rate not in RATES:
        raise UnsupportedAudio(f"the sample rate is {rate} Hz; accepted: {', '.join(map(str, RATES))} Hz")
    allowed = (32,) if code == WAVE_FORMAT_IEEE_FLOAT else (8, 16, 24, 32)
    if bits not in allowed:
        kind = "float" if code == WAVE_FORMAT_IEEE_FLOAT else "PCM"
        raise UnsupportedAudio(f"{bits}-bit {kind} samples: {kind} is read at {', '.join(map(str, allowed))} bits")
    if block_align != channels * bits // 8:
        raise LyingHeader(
            f"the header's block align is {block_align} bytes; {channels} channel(s) of {bits} bits make "
            f"{channels * bits // 8}"
        )
    return _Format(code, channels, rate, block_align, bits, extensible)


def _pcm_frames(data: bytes, fmt: _Format) -> bytes:
    """The sample bytes of a plain PCM WAV, read by the standard library (which knows only this format)."""
    try:
        with wave.open(io.BytesIO(data), "rb") as w:
            return w.readframes(w.getnframes())
    except (wave.Error, EOFError, struct.error) as e:
        raise NotWav(f"not a WAV file the wave module can read: {e}") from e


def _to_float(raw: bytes, fmt: _Format) -> NDArray[np.float32]:
    """Interleaved sample bytes → (frames, channels) floats in [-1, 1) (float samples as written)."""
    if fmt.code == WAVE_FORMAT_IEEE_FLOAT:
        values = np.frombuffer(raw, dtype="<f4").astype(np.float32)
        if not np.isfinite(values).all():
            raise BadAudio("the float samples include NaN or infinity")
    elif fmt.bits == 8:  # 8-bit WAV is unsigned, silence at 128
        values = (np.frombuffer(raw, dtype=np.uint8).astype(np.float32) - 128.0) / 128.0
    elif fmt.bits == 24:  # three little-endian bytes: put them in the top of an int32 to keep the sign
        b = np.frombuffer(raw, dtype=np.uint8).reshape(-1, 3).astype(np.int32)  # (frames·channels, 3)
        values = ((b[:, 0] << 8 | b[:, 1] << 16 | b[:, 2] << 24) >> 8).astype(np.float32) / 2.0**23
    else:
        dtype = "<i2" if fmt.bits == 16 else "<i4"
        values = (np.frombuffer(raw, dtype=dtype).astype(np.float64) / 2.0 ** (fmt.bits - 1)).astype(np.float32)
    return values.reshape(-1, fmt.channels)  # (frames, channels)


def read_wav(data: bytes, max_seconds: float = MAX_SECONDS) -> Audio:
    """A WAV file's bytes → its mono samples, or a BadAudio (AudioTooLong: InputTooLong) naming the problem."""
    chunks = _chunks(data)
    fmt = _format(data, chunks)
    if b"data" not in chunks:
        raise NotWav("not a WAV file: it has no 'data' chunk holding samples")
    start, size = chunks[b"data"]
    if start + size > len(data):
        raise LyingHeader(
            f"the header declares {size} bytes of samples but {len(data) - start} follow: a truncated file, or a "
            "writer that could not go back to fill in the size"
        )
    if size % fmt.block_align:
        raise LyingHeader(
            f"the header declares {size} bytes of samples, not a whole number of {fmt.block_align}-byte frames"
        )
    frames = size // fmt.block_align
    if frames > max_seconds * fmt.rate:
        raise AudioTooLong(frames, fmt.rate, max_seconds)
    plain = fmt.code == WAVE_FORMAT_PCM and not fmt.extensible
    raw = _pcm_frames(data, fmt) if plain else data[start : start + size]
    if len(raw) != size:
        raise LyingHeader(f"the data chunk declares {size} bytes of samples; {len(raw)} could be read")
    per_channel = _to_float(raw, fmt)
    mono = per_channel.mean(axis=1, dtype=np.float32) if fmt.channels > 1 else per_channel[:, 0]
    peak = float(np.abs(mono).max()) if len(mono) else 0.0
    if peak < SILENT_PEAK:
        raise SilentAudio(peak)
    encoding = "float" if fmt.code == WAVE_FORMAT_IEEE_FLOAT else "pcm"
    return Audio(np.ascontiguousarray(mono), fmt.rate, fmt.channels, fmt.bits, encoding)


@cache
def resampling_filter(up: int, down: int) -> NDArray[np.float64]:
    """The low-pass FIR at the upsampled rate (module docstring): a Kaiser-windowed sinc, gain `up` at DC."""
    ratio = max(up, down)
    half = HALF_TAPS_PER_RATIO * ratio
    taps = np.arange(-half, half + 1, dtype=np.float64)
    h: NDArray[np.float64] = np.sinc(taps / ratio) * np.kaiser(2 * half + 1, KAISER_BETA)
    return np.asarray(
        h / h.sum() * up, dtype=np.float64
    )  # up: the zeros stuffed between samples would otherwise cut the level by up


def resample(samples: NDArray[np.float32], rate: int, to: int = SAMPLE_RATE) -> NDArray[np.float32]:
    """Polyphase resampling by to/rate: output n = Σ_i x[i] h[n·down + half − i·up], ceil(N·up/down) outputs.

    Output n needs input q − j for j = 0 … J−1, with t = n·down + half, q = t // up and the filter's phase
    p = t % up: h[j·up + p]. The phase repeats every `up` outputs, so each phase is one matrix–vector product over
    a strided view of the input's windows."""
    g = gcd(rate, to)
    up, down = to // g, rate // g
    if up == down:
        return samples.astype(np.float32)
    h = resampling_filter(up, down)
    half = (len(h) - 1) // 2
    J = -(-len(h) // up)
    phases = np.zeros(J * up)
    phases[: len(h)] = h
    phases = phases.reshape(J, up).T[:, ::-1]  # (up, J): phases[p, J−1−j] = h[j·up + p]
    n_out = -(-len(samples) * up // down)
    last_q = ((n_out - 1) * down + half) // up
    x = np.concatenate([np.zeros(J - 1), samples.astype(np.float64), np.zeros(max(0, last_q - len(samples) + 1))])
    windows = np.lib.stride_tricks.sliding_window_view(x, J)  # windows[q] = x[q−J+1 … q] in input time
    out = np.empty(n_out)
    for r in range(min(up, n_out)):
        t = r * down + half
        q, p = t // up, t % up
        count = len(range(r, n_out, up))
        out[r::up] = windows[q : q + (count - 1) * down + 1 : down] @ phases[p]  # (count, J) @ (J,)
    return out.astype(np.float32)


def hz_to_mel(f: NDArray[np.float64]) -> NDArray[np.float64]:
    return 2595.0 * np.log10(1.0 + f / 700.0)


def mel_to_hz(m: NDArray[np.float64]) -> NDArray[np.float64]:
    return 700.0 * (10.0 ** (m / 2595.0) - 1.0)


@cache
def mel_filters() -> Tensor:
    """(N_MELS, WINDOW // 2 + 1): HTK triangles, N_MELS + 2 edges equally spaced in mel from F_MIN to F_MAX."""
    edges = mel_to_hz(np.linspace(hz_to_mel(np.array(F_MIN)), hz_to_mel(np.array(F_MAX)), N_MELS + 2))
    bins = np.arange(WINDOW // 2 + 1) * SAMPLE_RATE / WINDOW  # the STFT's bin frequencies, Hz
    lo, centre, hi = edges[:-2, None], edges[1:-1, None], edges[2:, None]  # (N_MELS, 1) each
    rising, falling = (bins - lo) / (centre - lo), (hi - bins) / (hi - centre)
    return torch.from_numpy(np.maximum(0.0, np.minimum(rising, falling))).float()


def mel_power(samples: NDArray[np.float32]) -> Tensor:
    """16 kHz samples (N,) → (N_MELS, T) the mel bands' power, before the log (log_mel's first half: training keeps
    a clean clip's, which a level change only multiplies)."""
    if len(samples) < WINDOW:
        raise AudioTooShort(len(samples))
    x = torch.from_numpy(np.ascontiguousarray(samples, dtype=np.float32))
    window = torch.hann_window(WINDOW, periodic=True)
    spec = torch.stft(x, n_fft=WINDOW, hop_length=HOP, window=window, center=False, return_complex=True)  # (F, T)
    power = spec.real**2 + spec.imag**2  # (F, T), F = 201
    return mel_filters() @ power


def log_mel(samples: NDArray[np.float32]) -> Tensor:
    """16 kHz samples (N,) → (T, N_MELS) log-mel frames, T = 1 + (N − 400) // 160."""
    return log_of(mel_power(samples))


def log_of(power: Tensor) -> Tensor:
    """(N_MELS, T) mel power → (T, N_MELS) log-mel frames: the natural log with LOG_FLOOR added."""
    return torch.log(power + LOG_FLOOR).T.contiguous()


def features(audio: Audio) -> Tensor:
    """The front end: a read WAV → 16 kHz → (T, N_MELS) log-mel frames. Training and serving both call this."""
    return log_mel(resample(audio.samples, audio.rate))


def wav_features(data: bytes, max_seconds: float = MAX_SECONDS) -> Tensor:
    """A WAV file's bytes → (T, N_MELS) log-mel frames, or a BadAudio naming what is wrong with them."""
    return features(read_wav(data, max_seconds))
