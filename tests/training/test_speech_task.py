"""The speech task (app/training/tasks/speech.py): what it trains on keeps the held-out voices and numbers out, its
batches are what the model serves on, its example clips are held out, and the committed models' cards carry
the metrics the issue asks for."""

from __future__ import annotations

import io
import json
import shutil
import wave
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.nn import functional as F

from app.engine.family import load_model
from app.engine.speech.audio import N_MELS, SAMPLE_RATE, wav_features
from app.engine.speech.card import speech_card
from app.engine.speech.model import SpeechConfig, SpeechModel
from app.training.loop import DEFAULT_CACHE
from app.training.tasks import TASKS, numbers
from app.training.tasks import speech_data as sd
from app.training.tasks.speech import (
    EXAMPLE_SECONDS,
    NOISY_SNR,
    SCALE,
    STACK,
    TASK,
    VARIANCE,
    SpeechBatch,
    SpeechData,
    example_utterances,
    example_wav,
    mask,
    run,
    steps_batch,
)

MODELS = Path(__file__).resolve().parents[2] / "models"
CELLS = ("rnn", "lstm", "gru")
needs_espeak = pytest.mark.skipif(shutil.which(sd.ESPEAK) is None, reason=f"{sd.ESPEAK} is not installed")


@pytest.fixture(scope="module")
def data() -> SpeechData:
    if shutil.which(sd.ESPEAK) is None:
        pytest.skip(f"{sd.ESPEAK} is not installed")
    return TASK.load(dry_run=True, cache=DEFAULT_CACHE)


def test_the_task_is_registered_as_the_speech_familys_kind() -> None:
    assert TASKS["speech"] is TASK and TASK.kind == "transcribe"


def test_the_number_lexicon_allows_every_transcript_of_0_to_999999_and_no_word_outside_them() -> None:
    """Read off 2,999 numbers' transcripts, it must fit all of them: a sample across the range, and the sets'."""
    lexicon, words = sd.number_lexicon(), numbers.translator()
    rng = np.random.default_rng(3)
    said = [*rng.integers(0, 1_000_000, 2000).tolist(), 999_999, 100_001, 20_020]
    assert all(lexicon.accepts(sd.transcript(words(n, "en"))) for n in said)
    sets = sd.speech_sets(seed=0, n_train=0, n_eval=200)
    assert all(lexicon.accepts(u.text) for u in sets.voices + sets.phrases)
    assert lexicon.words == {
        p for n in range(1000) for p in sd.transcript(words(n, "en")).replace("-", " ").split()
    } | {"thousand"}
    for wrong in ("twenty-twenty", "one thousand hundred", "hundred", "and five", "one hundred and"):
        assert not lexicon.accepts(wrong)


def test_the_training_clips_never_say_a_held_out_number_nor_use_a_held_out_voice(data: SpeechData) -> None:
    sets = data.sets
    assert sets is not None
    held_combos, held_numbers = sd.heldout_combos(), sd.heldout_numbers()
    assert data.train_texts == [u.text for u in sets.train] and len(data.train_clips) == len(sets.train)
    assert not {u.combo for u in sets.train} & held_combos
    assert not {u.number for u in sets.train} & held_numbers
    # the two held-out sets measure one thing each: new voices saying trained-like numbers, new numbers by old voices
    assert {u.combo for u in sets.voices} <= held_combos and not {u.number for u in sets.voices} & held_numbers
    assert {u.number for u in sets.phrases} <= held_numbers and not {u.combo for u in sets.phrases} & held_combos
    assert data.heldout["voices"][1] == [u.text for u in sets.voices]
    assert data.heldout["phrases"][1] == [u.text for u in sets.phrases]


def test_a_padded_batch_gives_each_clip_the_logits_and_ctc_loss_it_has_alone(data: SpeechData) -> None:
    """The padding is packed away: the reverse direction of a short clip in a long batch starts at its own end."""
    torch.manual_seed(0)
    model = SpeechModel(SpeechConfig("gru", N_MELS, STACK, 8, 1 + len(sd.ALPHABET), 2, True, SCALE, VARIANCE))
    clips, texts = data.train_clips[:4], data.train_texts[:4]
    rng = np.random.default_rng(0)
    frames = [sd.hear(c, rng) for c in clips]
    batch = steps_batch(frames, texts)
    assert batch.lengths is not None and len(set(batch.lengths.tolist())) > 1  # clips of different lengths
    logits = run(model, batch.ids, batch.lengths)
    losses = []
    for i, f in enumerate(frames):
        alone = model(model.steps(f)[None])[0]  # the model as the server runs it on one clip
        n = int(batch.lengths[i])
        torch.testing.assert_close(logits[i, :n], alone)
        target = torch.tensor(sd.encode(texts[i]))
        # reduction "mean": the clip's loss over its transcript's length, as the batch's loss weighs each clip
        losses.append(
            F.ctc_loss(F.log_softmax(alone, -1)[:, None], target[None], torch.tensor([n]), torch.tensor([len(target)]))
        )
    torch.testing.assert_close(TASK.loss(logits, batch), torch.stack(losses).mean())


def test_a_training_batch_masks_a_band_in_every_stacked_frame_and_a_span_of_steps() -> None:
    seen_bands = seen_steps = 0
    for seed in range(20):
        steps = torch.ones(40, STACK * N_MELS)
        mask(steps, 40, np.random.default_rng(seed))
        bands = steps.view(40, STACK, N_MELS)
        masked_bands = {b for b in range(N_MELS) if bool((bands[:, :, b] == 0).all())}
        masked_steps = {t for t in range(40) if bool((steps[t] == 0).all())}
        # every zero is in a masked band (in all stacked frames) or a masked step; each mask is one run
        assert all(t in masked_steps or c % N_MELS in masked_bands for t, c in (steps == 0).nonzero().tolist())
        for masked in (masked_bands, masked_steps):
            assert not masked or masked == set(range(min(masked), max(masked) + 1))
        seen_bands += bool(masked_bands)
        seen_steps += bool(masked_steps)
    assert seen_bands and seen_steps


def test_a_batch_is_the_stacked_frames_and_the_transcripts_characters(data: SpeechData) -> None:
    batch = data.batch(np.random.default_rng(1), 5)
    assert isinstance(batch, SpeechBatch) and batch.lengths is not None
    assert batch.ids.shape[0] == 5 and batch.ids.shape[2] == STACK * N_MELS
    assert batch.ids.shape[1] == int(batch.lengths.max())
    for row, n in zip(batch.targets.tolist(), batch.target_lengths.tolist(), strict=True):
        assert sd.decode(row[:n]) in data.train_texts and all(c == 0 for c in row[n:])


@needs_espeak
def test_the_example_clips_are_short_held_out_voices_saying_numbers_never_trained_on() -> None:
    examples = example_utterances()
    assert len(examples) == 6 and sum(e.snr == NOISY_SNR for e in examples) == 2
    held_combos, held_numbers = sd.heldout_combos(), sd.heldout_numbers()
    for e in examples:
        assert e.utterance.combo in held_combos and e.utterance.number in held_numbers
        assert e.file == f"{e.index:02d}-{e.text.replace(' ', '-')}.wav"
        data = example_wav(e)
        with wave.open(io.BytesIO(data)) as w:
            assert (w.getnchannels(), w.getsampwidth(), w.getframerate()) == (1, 2, SAMPLE_RATE)
            assert w.getnframes() <= EXAMPLE_SECONDS * SAMPLE_RATE
        assert wav_features(data).shape[1] == N_MELS  # the server's front end reads it
    assert [e["audio"] for e in TASK.examples()] == [f"speech-examples/{e.file}" for e in examples]


# --- the committed models -----------------------------------------------------------------------------------


@pytest.mark.parametrize("cell", CELLS)
def test_each_committed_speech_model_loads_and_its_card_has_the_issues_metrics(cell: str) -> None:
    mid = f"speech-{cell}"
    if not (MODELS / f"{mid}.json").exists():
        pytest.skip(f"{mid} is not trained (unrolled train speech)")
    loaded = load_model(MODELS, mid)
    card = loaded.card
    assert (card.kind, card.task, card.cell, card.bidirectional) == ("transcribe", "speech", cell, True)
    block = speech_card(card)
    assert block.alphabet == sd.ALPHABET and block.stack == STACK and block.variance == VARIANCE
    assert block.lexicon == sd.number_lexicon()  # the served transcripts are spelt in the number words
    assert (MODELS / f"{mid}.safetensors").stat().st_size < 2_000_000
    m = card.metrics
    for rate in ("wer", "cer", "wer_lexicon"):
        for held in ("voices", "phrases"):
            assert set(m[rate][held]) == {"clean", f"snr{NOISY_SNR:g}"}
            assert all(0.0 <= v for v in m[rate][held].values())
    assert m["training"]["cpu_seconds"] > 0 and card.train_seconds > 0 and m["training"]["dry_run"] is False
    assert {"wall_seconds", "cpu_seconds", "train_clips", "heldout_combos"} <= set(m["data"])
    assert "espeak-ng" in card.data_source.lower() and "never committed" in card.data_source
    key = TASK.key_metric(m)
    assert key is not None and key.value == f"{100 * m['wer_lexicon']['voices']['clean']:.1f} %"


def test_the_committed_example_clips_are_the_tasks_examples() -> None:
    cards = [MODELS / f"speech-{c}.json" for c in CELLS if (MODELS / f"speech-{c}.json").exists()]
    if not cards:
        pytest.skip("no speech model is trained")
    for path in cards:
        for ex in json.loads(path.read_text())["examples"]:
            clip = MODELS / ex["audio"]
            assert clip.is_file() and clip.name.split("-", 1)[1] == ex["text"].replace(" ", "-") + ".wav"
