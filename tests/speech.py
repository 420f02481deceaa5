"""Speech models and clips made in the tests: a small model of random (seeded) weights saved as the zoo saves one,
and WAVs synthesised with numpy (tones that glide like a voice's formants, with a little noise)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from numpy.typing import NDArray

from app.engine.card import ModelCard, save_model
from app.engine.layers import Cell
from app.engine.speech.card import SpeechCard, config
from app.engine.speech.lexicon import Lexicon
from app.engine.speech.model import SpeechModel
from tests.engine.test_audio import float_wav, pcm_wav

ALPHABET = " -efinortvw"
# Number words spelt in ALPHABET, with pairs of them: a lexicon for a test model's constrained search.
LEXICON = Lexicon.of(["one two", "two", "ten", "nine", "five-nine", "fifteen", "nineteen one"])


def write_speech_model(
    folder: Path,
    model_id: str,
    cell: Cell,
    bidirectional: bool = True,
    layers: int = 2,
    hidden: int = 8,
    seed: int = 0,
    lexicon: Lexicon | None = None,
) -> ModelCard:
    """With a lexicon, the steps normalised by each band's deviation too (as the trained models are)."""
    block = SpeechCard(alphabet=ALPHABET, variance=lexicon is not None, lexicon=lexicon)
    card = ModelCard(id=model_id, task="speech", cell=cell, kind="transcribe", hidden_size=hidden, num_layers=layers,
                     vocab={"level": "value", "tokens": ["<unk>"]}, bidirectional=bidirectional,
                     block=block)  # fmt: skip
    torch.manual_seed(seed)
    save_model(folder, card, SpeechModel(config(card)))
    return card


def voice(seconds: float, rate: int, seed: int = 0) -> NDArray[np.float64]:
    """A clip that is no word but moves like one: two gliding tones, loud then soft, and noise under them."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(rate * seconds)) / rate
    f1 = 300 + 400 * t / max(seconds, 1e-9)  # Hz, rising
    f2 = 2200 - 900 * t / max(seconds, 1e-9)
    envelope = 0.5 + 0.4 * np.sin(2 * np.pi * 3 * t)
    x = envelope * (0.4 * np.sin(2 * np.pi * np.cumsum(f1) / rate) + 0.2 * np.sin(2 * np.pi * np.cumsum(f2) / rate))
    return np.clip(x + 0.02 * rng.standard_normal(len(t)), -0.99, 0.99)


def voice_wav(
    seconds: float = 1.0, rate: int = 22_050, bits: int = 16, channels: int = 1, seed: int = 0, encoding: str = "pcm"
) -> bytes:
    """A WAV of `voice`: PCM of `bits` or 32-bit float, mono or stereo (the right channel a little softer)."""
    x = voice(seconds, rate, seed)
    frames = x if channels == 1 else np.stack([x, 0.8 * x], axis=1)
    return float_wav(frames, rate) if encoding == "float" else pcm_wav(frames, rate, bits)
