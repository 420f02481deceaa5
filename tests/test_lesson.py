"""The vanishing-gradient lesson, as the app shows it: the engine's BPTT norms on the memory cards' N = 100
example agree with the cards, and the RNN's gradient reaching the first step is far smaller than the others':
it loses at least twenty orders of magnitude more on the way."""

from __future__ import annotations

import pytest

from app.config import ROOT
from app.rnn.model import load_model
from app.rnn.trace import trace

pytestmark = pytest.mark.claims  # the zoo's own models: `make test` runs these, `make test-fast` does not


def first_over_last(cell: str) -> tuple[float, float]:
    loaded = load_model(ROOT / "models", f"memory-{cell}")
    example = loaded.card.metrics["gradient"]
    assert example["text"].count(" ") >= 10 and len(example["text"].replace(" ", "")) >= 102  # N = 100
    norms = trace(loaded, example["text"], label=example["label"]).layers[0].grad_hidden  # L: the last step
    return float(norms[0] / norms[-1]), float(example["ratio_first_last"])


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_engine_reproduces_the_cards_gradient_ratio(cell: str) -> None:
    engine, card = first_over_last(cell)
    assert engine == pytest.approx(card, rel=1e-3)


def test_the_rnn_loses_the_gradient_by_far_more_orders_of_magnitude_than_lstm_and_gru() -> None:
    rnn, _ = first_over_last("rnn")
    assert 0.0 < rnn <= 1e-20, "a vanishing gradient is reported, not rounded to zero"
    for cell in ("lstm", "gru"):
        assert first_over_last(cell)[0] >= 1e20 * rnn
