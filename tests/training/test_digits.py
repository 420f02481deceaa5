"""The digits task (app/training/tasks/digits.py): the held-out speaker's recordings are never trained on, the
scaling is the trained speakers', the card's examples are the held-out speaker's own recordings, and a trained
model's card says its held-out accuracy the way the task's metrics recompute it."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from app.engine.family import load_model
from app.engine.series.card import series_card
from app.engine.series.model import SeriesConfig, SeriesModel
from app.engine.series.trace import trace_series
from app.training.loop import DEFAULT_CACHE
from app.training.tasks import TASKS
from app.training.tasks import digits as dg
from app.training.tasks.wheel import DataUnavailable

MODELS = Path(__file__).resolve().parents[2] / "models"


@pytest.fixture(scope="module")
def data() -> dg.DigitsTaskData:
    try:
        return dg.TASK.load(False, DEFAULT_CACHE)
    except DataUnavailable as e:
        pytest.skip(f"digits data unavailable: {e}")


def test_the_task_is_registered_as_a_series_classifier() -> None:
    assert TASKS["digits"] is dg.TASK and dg.TASK.kind == "series" and dg.TASK.labels == tuple("0123456789")


def test_no_training_batch_holds_a_recording_of_the_held_out_speaker(data: dg.DigitsTaskData) -> None:
    rng = np.random.default_rng(0)
    drawn: set[int] = set()
    for _ in range(1000):
        drawn.update(data.draw(rng, 32))
    held = set(data.data.heldout)
    assert len(held) == 500 and not drawn & held
    assert drawn == set(data.data.train)  # every trained speaker's recording is drawn in time, and only those
    batch = data.batch(np.random.default_rng(1), 8)  # what the loop trains on: the trained speakers' digits
    assert batch.ids.shape[0] == 8 and batch.ids.shape[2] == 13 and batch.lengths is not None


def test_the_scaling_is_the_trained_speakers_frames_alone(data: dg.DigitsTaskData) -> None:
    trained = np.concatenate([data.data.frames[i] for i in data.data.train]).astype(np.float64)
    assert data.scaling is not None
    np.testing.assert_allclose(data.scaling.mean, trained.mean(axis=0), rtol=1e-9)
    np.testing.assert_allclose(data.scaling.std, trained.std(axis=0), rtol=1e-9)
    everyone = np.concatenate(data.data.frames).astype(np.float64)
    assert not np.allclose(data.scaling.mean, everyone.mean(axis=0), rtol=1e-6)  # the held-out frames would move it


def test_the_examples_are_recordings_of_the_held_out_speaker_with_the_digit_they_say(data: dg.DigitsTaskData) -> None:
    examples = dg.TASK.examples()
    assert len(examples) >= 3
    for ex in examples:
        frames = np.array(ex["values"])
        matches = [
            i for i in data.data.heldout
            if len(data.data.frames[i]) == len(frames) and np.allclose(data.data.frames[i], frames, atol=0.006)
        ]  # fmt: skip
        assert matches, f"example {ex['label']} is no recording of the held-out speaker"
        assert all(str(data.data.digits[i]) == ex["label"] for i in matches)


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_a_committed_models_held_out_accuracy_is_recomputed_with_plain_torch(
    cell: str, data: dg.DigitsTaskData
) -> None:
    """The card's accuracy, recomputed from the weights with torch.nn alone on every held-out recording; and the
    engine's trace of each recording gives the same answer."""
    path = MODELS / f"digits-{cell}.json"
    if not path.exists():
        pytest.skip(f"{path.name} is not trained")
    card = json.loads(path.read_text())
    loaded = load_model(MODELS, f"digits-{cell}")
    model = loaded.model
    assert data.scaling is not None and series_card(loaded.card).labels == dg.LABELS
    right = 0
    with torch.no_grad():
        for i in data.data.heldout:
            logits = model(data.scaled[i][None])[0, -1]
            right += int(int(logits.argmax()) == data.data.digits[i])
    accuracy = right / len(data.data.heldout)
    assert card["metrics"]["heldout_accuracy"] == pytest.approx(accuracy, abs=1e-4)
    assert card["metrics"]["heldout_recordings"] == 500
    for i in data.data.heldout[:20]:  # the engine's exact trace agrees with the plain forward
        tr = trace_series(loaded, data.data.frames[i].astype(np.float64).tolist())
        with torch.no_grad():
            logits = model(data.scaled[i][None])[0, -1]
        assert tr.prediction == int(logits.argmax())


def test_the_warp_turns_mfccs_into_an_envelope_and_back_without_loss() -> None:
    """perturb's round trip: 13 MFCCs → a log-mel envelope → MFCCs is the identity (the DCT rows are orthonormal),
    so a warp by e^0 changes nothing and what a warp changes is the envelope alone."""
    basis = dg.dct_basis()
    np.testing.assert_allclose(basis @ basis.T, np.eye(13), atol=1e-12)
    frames = np.random.default_rng(0).normal(size=(7, 13))
    np.testing.assert_allclose((frames @ basis) @ basis.T, frames, atol=1e-12)
    same = dg.resample(frames @ basis, np.arange(dg.BANDS, dtype=np.float64), axis=1)
    np.testing.assert_allclose(same @ basis.T, frames, atol=1e-12)


def test_dropout_is_a_training_matter_and_the_served_forward_is_the_plain_model() -> None:
    """Training reads the batch with DROPOUT of the head's inputs zeroed (the rest scaled by 1/(1 − p)); in eval
    mode, as the metrics and the server run it, the task's forward is the model's own."""
    model = SeriesModel(SeriesConfig("gru", len(dg.FEATURES), 8, 1, len(dg.LABELS)))
    x = torch.randn(4, 9, 13)
    batch = dg.padded(list(x), np.zeros(4, dtype=np.int64))
    model.train()
    torch.manual_seed(0)
    trained = dg.TASK.forward(model, batch)
    states, _ = model.rnn(x)
    torch.manual_seed(0)
    mask = torch.nn.functional.dropout(torch.ones_like(states), dg.DROPOUT)
    torch.testing.assert_close(trained, model.head(states * mask))
    assert 0.1 < float((mask == 0).float().mean()) < 0.5
    model.eval()
    torch.testing.assert_close(dg.TASK.forward(model, batch), model(x), rtol=0, atol=0)
