"""The speech front end (app/engine/speech/audio.py): WAVs of every accepted format read back to their samples,
every kind of bad audio refused by name (and mapped to its 4xx), the resampler against scipy's, and the log-mel
frames against a framing, FFT and mel filterbank written here from their formulas."""

from __future__ import annotations

import io
import struct
import tracemalloc
import wave
from math import gcd

import numpy as np
import pytest
import torch
from numpy.typing import NDArray
from scipy import signal  # type: ignore[import-untyped]

from app.engine.errors import InputTooLong
from app.engine.speech import audio
from app.engine.speech.audio import (
    GUID_TAIL,
    HOP,
    N_MELS,
    RATES,
    SAMPLE_RATE,
    WINDOW,
    AudioTooLong,
    AudioTooShort,
    BadAudio,
    LyingHeader,
    NoChannels,
    NotWav,
    SilentAudio,
    UnsupportedAudio,
    features,
    log_mel,
    mel_filters,
    read_wav,
    resample,
)
from app.web.errors import classify


def tone(rate: int, seconds: float, hz: float = 440.0, level: float = 0.5) -> NDArray[np.float64]:
    t = np.arange(int(rate * seconds)) / rate
    return level * np.sin(2 * np.pi * hz * t)


def pcm_wav(x: NDArray[np.float64], rate: int, bits: int) -> bytes:
    """(N,) or (N, channels) floats in [-1, 1) → a PCM WAV written by the standard wave module."""
    frames = x.reshape(len(x), -1 if x.ndim > 1 else 1)
    scale = 2.0 ** (bits - 1)
    ints = np.clip(np.round(frames * scale), -scale, scale - 1).astype(np.int64)
    if bits == 8:
        raw = (ints + 128).astype(np.uint8).tobytes()
    else:
        raw = b"".join(int(v).to_bytes(bits // 8, "little", signed=True) for v in ints.ravel())
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(frames.shape[1])
        w.setsampwidth(bits // 8)
        w.setframerate(rate)
        w.writeframes(raw)
    return buf.getvalue()


def riff(fmt_body: bytes, data: bytes, data_size: int | None = None, extra: bytes = b"") -> bytes:
    """A WAV written by hand: RIFF, WAVE, the given fmt body, any extra chunks, then data (its size as declared)."""
    declared = len(data) if data_size is None else data_size
    body = b"WAVE" + b"fmt " + struct.pack("<I", len(fmt_body)) + fmt_body + extra
    body += b"data" + struct.pack("<I", declared) + data
    return b"RIFF" + struct.pack("<I", len(body)) + body


def fmt_chunk(code: int, channels: int, rate: int, bits: int, cb: bytes | None = None) -> bytes:
    block = channels * bits // 8
    head = struct.pack("<HHIIHH", code, channels, rate, rate * block, block, bits)
    return head if cb is None else head + struct.pack("<H", len(cb)) + cb


def extensible(subformat: int, channels: int, rate: int, bits: int, valid_bits: int | None = None) -> bytes:
    guid = struct.pack("<H", subformat) + GUID_TAIL
    cb = struct.pack("<HI", valid_bits or bits, 0) + guid
    return fmt_chunk(0xFFFE, channels, rate, bits, cb)


def float_wav(x: NDArray[np.float64], rate: int, fmt_size: int = 18) -> bytes:
    frames = x.reshape(len(x), -1)
    body = fmt_chunk(3, frames.shape[1], rate, 32, b"" if fmt_size == 18 else None)
    return riff(body, frames.astype("<f4").tobytes())


# Reading: every accepted format


@pytest.mark.parametrize("bits", [8, 16, 24, 32])
@pytest.mark.parametrize("channels", [1, 2])
def test_pcm_wavs_written_by_the_wave_module_read_back_to_their_samples(bits: int, channels: int) -> None:
    left = tone(22_050, 0.2, 440.0, 0.6)
    x = left if channels == 1 else np.stack([left, tone(22_050, 0.2, 1000.0, 0.3)], axis=1)
    got = read_wav(pcm_wav(x, 22_050, bits))
    want = x if channels == 1 else x.mean(axis=1)  # stereo is averaged to mono
    assert (got.rate, got.channels, got.bits, got.encoding) == (22_050, channels, bits, "pcm")
    assert got.samples.dtype == np.float32 and got.samples.shape == want.shape
    step = max(1.01 / 2 ** (bits - 1), 1e-7)  # one quantisation step, or float32's precision at 32 bits
    np.testing.assert_allclose(got.samples, want, atol=step)


@pytest.mark.parametrize("fmt_size", [16, 18])
@pytest.mark.parametrize("channels", [1, 2])
def test_float32_wavs_written_by_hand_read_back_exactly(fmt_size: int, channels: int) -> None:
    left = tone(48_000, 0.1, 300.0, 0.9)
    x = left if channels == 1 else np.stack([left, -0.5 * left], axis=1)
    got = read_wav(float_wav(x, 48_000, fmt_size))
    want = (x if channels == 1 else x.mean(axis=1)).astype(np.float32)
    assert (got.encoding, got.bits, got.channels) == ("float", 32, channels)
    np.testing.assert_allclose(got.samples, want, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize(("subformat", "bits"), [(1, 16), (1, 24), (3, 32)])
def test_wave_format_extensible_is_read_by_its_subformat(subformat: int, bits: int) -> None:
    x = tone(16_000, 0.1, 700.0, 0.4)
    if subformat == 3:
        raw = x.astype("<f4").tobytes()
    else:
        ints = np.round(x * 2 ** (bits - 1)).astype(np.int64)
        raw = b"".join(int(v).to_bytes(bits // 8, "little", signed=True) for v in ints)
    got = read_wav(riff(extensible(subformat, 1, 16_000, bits), raw))
    assert got.encoding == ("float" if subformat == 3 else "pcm")
    np.testing.assert_allclose(got.samples, x, atol=1.01 / 2 ** (bits - 1) if subformat == 1 else 1e-7)


def test_chunks_before_the_data_and_a_pad_byte_are_walked_over() -> None:
    x = tone(8_000, 0.1)
    plain = pcm_wav(x, 8_000, 16)
    odd_chunk = b"LIST" + struct.pack("<I", 3) + b"abc" + b"\0"  # odd size: one pad byte follows
    with_list = riff(plain[20:36], plain[44:], extra=odd_chunk)
    np.testing.assert_array_equal(read_wav(with_list).samples, read_wav(plain).samples)


@pytest.mark.parametrize("rate", RATES)
def test_every_accepted_rate_reads_and_gives_frames_at_16_khz(rate: int) -> None:
    clip = read_wav(pcm_wav(tone(rate, 0.5), rate, 16))
    frames = features(clip)
    n16 = -(-len(clip.samples) * SAMPLE_RATE // rate)
    assert frames.shape == (1 + (n16 - WINDOW) // HOP, N_MELS)


# Refusing bad audio, each by name


def too_long() -> bytes:
    return pcm_wav(tone(8_000, 10.01), 8_000, 16)


BAD: dict[str, tuple[bytes, type[Exception], str]] = {
    "text": (b"hello, this is not audio", NotWav, "not a WAV"),
    "empty": (b"", NotWav, "not a WAV"),
    "mp3": (b"ID3\x04\x00" + bytes(100), NotWav, "'ID3"),
    "no fmt": (b"RIFF" + struct.pack("<I", 12) + b"WAVE" + b"data" + struct.pack("<I", 0), NotWav, "no 'fmt '"),
    "no data": (
        b"RIFF" + struct.pack("<I", 28) + b"WAVE" + b"fmt " + struct.pack("<I", 16) + fmt_chunk(1, 1, 8_000, 16),
        NotWav,
        "no 'data'",
    ),
    "data beyond the bytes": (
        riff(fmt_chunk(1, 1, 22_050, 16), bytes(2000), data_size=0x7FFFF000),
        LyingHeader,
        "2147479552 bytes of samples but 2000 follow",
    ),
    "huge declared size": (
        riff(fmt_chunk(1, 2, 48_000, 32), bytes(64), data_size=0xFFFFFFFF),
        LyingHeader,
        "4294967295 bytes",
    ),
    "not whole frames": (riff(fmt_chunk(1, 2, 16_000, 16), bytes(4003)), LyingHeader, "whole number of 4-byte"),
    "block align": (
        riff(struct.pack("<HHIIHH", 1, 1, 16_000, 32_000, 4, 16), bytes(800)),
        LyingHeader,
        "block align is 4",
    ),
    "short fmt": (riff(fmt_chunk(1, 1, 16_000, 16)[:12], bytes(800)), LyingHeader, "needs 16"),
    "0 channels": (riff(fmt_chunk(1, 0, 16_000, 16), bytes(800)), NoChannels, "0 channels"),
    "3 channels": (riff(fmt_chunk(1, 3, 16_000, 16), bytes(1200)), UnsupportedAudio, "3 channels"),
    "rate 96 kHz": (riff(fmt_chunk(1, 1, 96_000, 16), bytes(800)), UnsupportedAudio, "96000 Hz"),
    "rate 47999 Hz": (riff(fmt_chunk(1, 1, 47_999, 16), bytes(800)), UnsupportedAudio, "47999 Hz"),
    "rate 4 kHz": (riff(fmt_chunk(1, 1, 4_000, 16), bytes(800)), UnsupportedAudio, "4000 Hz"),
    "12-bit PCM": (
        riff(fmt_chunk(1, 1, 16_000, 12)[:14] + struct.pack("<H", 12), bytes(800)),
        UnsupportedAudio,
        "12-bit PCM",
    ),
    "64-bit float": (riff(fmt_chunk(3, 1, 16_000, 64), bytes(800)), UnsupportedAudio, "64-bit float"),
    "16-bit float": (riff(fmt_chunk(3, 1, 16_000, 16), bytes(800)), UnsupportedAudio, "16-bit float"),
    "mu-law": (riff(fmt_chunk(7, 1, 8_000, 8), bytes(800)), UnsupportedAudio, "0x0007"),
    "extensible, unknown GUID": (
        riff(fmt_chunk(0xFFFE, 1, 16_000, 16, bytes(22)), bytes(800)),
        UnsupportedAudio,
        "subformat",
    ),
    "extensible, short fmt": (riff(fmt_chunk(0xFFFE, 1, 16_000, 16, b""), bytes(800)), LyingHeader, "40 bytes"),
    "NaN samples": (float_wav(np.array([0.5, np.nan, 0.1] * 400), 16_000), BadAudio, "NaN"),
    "silent zeros": (pcm_wav(np.zeros(8_000), 8_000, 16), SilentAudio, "silent"),
    "silent, −70 dBFS": (pcm_wav(tone(16_000, 0.5, level=10 ** (-70 / 20)), 16_000, 24), SilentAudio, "-70 dBFS"),
    "no samples": (pcm_wav(np.zeros(0), 16_000, 16), SilentAudio, "silent"),
    "too short": (pcm_wav(tone(16_000, 0.01), 16_000, 16), AudioTooShort, "one frame needs 400"),
    "too long": (too_long(), AudioTooLong, "lasts 10.01 s; the limit is 10 s"),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_audio_is_refused_with_the_problem_named(case: str) -> None:
    data, error, words = BAD[case]
    with pytest.raises(error, match=words.replace("(", r"\(")) as caught:
        audio.wav_features(data)
    status, name = classify(caught.value)
    assert (status, name) == ((413, "too_large") if error is AudioTooLong else (422, "invalid"))


def test_too_long_is_the_engines_input_too_long_in_samples() -> None:
    with pytest.raises(InputTooLong) as caught:
        read_wav(too_long())
    assert (caught.value.steps, caught.value.limit) == (80_080, 80_000)


def test_a_header_claiming_gigabytes_allocates_nothing_from_the_claim() -> None:
    lie = riff(fmt_chunk(1, 2, 48_000, 32), bytes(4000), data_size=0xFFFFFFF0)
    honest_but_long = riff(fmt_chunk(1, 2, 48_000, 32), bytes(8 * 48_000 * 11))  # 11 s of real bytes
    for data, error in ((lie, LyingHeader), (honest_but_long, AudioTooLong)):
        tracemalloc.start()
        with pytest.raises(error):
            read_wav(data)
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        assert peak < 100_000  # neither the claim nor the body's length is allocated


def test_the_silence_threshold_is_minus_60_dbfs() -> None:
    read_wav(pcm_wav(tone(16_000, 0.5, level=10 ** (-58 / 20)), 16_000, 16))  # quiet, not silent
    with pytest.raises(SilentAudio):
        read_wav(pcm_wav(tone(16_000, 0.5, level=10 ** (-62 / 20)), 16_000, 16))


# Resampling


@pytest.mark.parametrize("rate", RATES)
def test_resampling_matches_scipy_resample_poly(rate: int) -> None:
    rng = np.random.default_rng(rate)
    x = (0.3 * rng.standard_normal(rate // 3)).astype(np.float32)
    g = gcd(rate, SAMPLE_RATE)
    want = signal.resample_poly(x.astype(np.float64), SAMPLE_RATE // g, rate // g)
    got = resample(x, rate)
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, atol=1e-6)


@pytest.mark.parametrize("rate", [22_050, 44_100, 48_000])
def test_resampling_keeps_the_speech_band_and_removes_what_would_alias(rate: int) -> None:
    def level(x: NDArray[np.float32]) -> float:
        middle = x[len(x) // 4 : -len(x) // 4]  # away from the edges' zero padding
        return float(np.sqrt(np.mean(middle.astype(np.float64) ** 2)))

    low = tone(rate, 1.0, 1_000.0).astype(np.float32)
    high = tone(rate, 1.0, 10_000.0).astype(np.float32)  # above 8 kHz: at 16 kHz it would fold to 6 kHz
    # Kaiser β = 5: pass-band ripple and stop band both about 10^(−55/20) ≈ 0.2 %
    assert level(resample(low, rate)) == pytest.approx(level(low), rel=3e-3)
    assert level(resample(high, rate)) < 10 ** (-50 / 20) * level(high)


# Log-mel frames


def htk_filterbank_from_the_formula() -> NDArray[np.float64]:
    """Written out band by band and bin by bin: mel = 2595 log10(1 + f / 700), 42 edges from 0 to 8000 Hz."""
    top = 2595 * np.log10(1 + 8000 / 700)
    edges = [700 * (10 ** (top * i / (N_MELS + 1) / 2595) - 1) for i in range(N_MELS + 2)]
    bank = np.zeros((N_MELS, WINDOW // 2 + 1))
    for m in range(N_MELS):
        lo, centre, hi = edges[m], edges[m + 1], edges[m + 2]
        for k in range(WINDOW // 2 + 1):
            f = k * SAMPLE_RATE / WINDOW
            if lo <= f <= centre:
                bank[m, k] = (f - lo) / (centre - lo)
            elif centre < f <= hi:
                bank[m, k] = (hi - f) / (hi - centre)
    return bank


def test_the_mel_filterbank_is_the_htk_triangles() -> None:
    bank = mel_filters().double().numpy()
    np.testing.assert_allclose(bank, htk_filterbank_from_the_formula(), atol=1e-6)
    assert (bank.max(axis=1) > 0.5).all()  # no band falls between the STFT's bins


def test_log_mel_is_hann_frames_fft_power_mel_and_log() -> None:
    x = (0.2 * np.random.default_rng(1).standard_normal(16_000)).astype(np.float32)
    n = np.arange(WINDOW)
    hann = 0.5 - 0.5 * np.cos(2 * np.pi * n / WINDOW)  # periodic Hann
    T = 1 + (len(x) - WINDOW) // HOP
    frames = np.stack([x[t * HOP : t * HOP + WINDOW].astype(np.float64) * hann for t in range(T)])  # (T, 400)
    power = np.abs(np.fft.rfft(frames, axis=1)) ** 2  # (T, 201)
    want = np.log(power @ htk_filterbank_from_the_formula().T + audio.LOG_FLOOR)  # (T, 40)
    got = log_mel(x)
    assert got.shape == (T, N_MELS) and got.dtype == torch.float32
    np.testing.assert_allclose(got.double().numpy(), want, rtol=1e-4, atol=1e-4)


def test_a_tone_lights_the_mel_band_around_its_frequency() -> None:
    frames = features(read_wav(pcm_wav(tone(44_100, 0.5, 1_000.0), 44_100, 16)))
    centres = [float(c) for c in audio.mel_to_hz(np.linspace(0, audio.hz_to_mel(np.array(8000.0)), N_MELS + 2))]
    loudest = int(frames.mean(dim=0).argmax())
    assert centres[loudest] < 1_000.0 < centres[loudest + 2]  # the band whose triangle holds 1 kHz


def test_seal_gives_a_stream_written_wav_its_true_sizes() -> None:
    x = tone(22_050, 0.2)
    honest = pcm_wav(x, 22_050, 16)
    stream = bytearray(honest + b"\x01")  # as espeak-ng --stdout: placeholder sizes, and a stray last byte
    struct.pack_into("<I", stream, 4, 0x7FFFF024)
    struct.pack_into("<I", stream, 40, 0x7FFFF000)
    with pytest.raises(LyingHeader):
        read_wav(bytes(stream))
    assert audio.seal(bytes(stream)) == honest
