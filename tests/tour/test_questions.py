"""A scene's question (issue 27, predict then reveal): its shape is checked where the tour is loaded, and the
built-in tour asks where it teaches (sequential memory, the vanishing gradient, gates, translation)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from app.tour.tours import BUILTIN_TOURS, DEFAULT_TOUR, TourError, load_tour
from tests.tour.test_tour import write

GOOD = {"text": "Which cell still knows the letter?", "choices": ["RNN", "LSTM", "GRU"], "reveal": "The gated ones."}


def test_a_question_is_read_with_its_scene(tmp_path: Path) -> None:
    path = write(tmp_path, "asks", {"title": "t", "scenes": [{"title": "x", "model": "m", "question": GOOD}]})
    question = load_tour(path).scenes[0].question
    assert question is not None
    assert (question.text, question.choices, question.reveal) == (GOOD["text"], GOOD["choices"], GOOD["reveal"])


@pytest.mark.parametrize(
    ("question", "says"),
    [
        ({**GOOD, "choices": ["only one"]}, "question.choices"),
        ({**GOOD, "choices": [str(k) for k in range(7)]}, "question.choices"),
        ({**GOOD, "choices": ["LSTM", "lstm"]}, "the choices repeat one"),
        ({**GOOD, "choices": ["a", "x" * 81]}, "1 to 80 characters"),
        ({**GOOD, "choices": ["a", "  "]}, "1 to 80 characters"),
        ({**GOOD, "text": ""}, "question.text"),
        ({**GOOD, "text": "x" * 201}, "question.text"),
        ({"text": "t", "choices": ["a", "b"]}, "question.reveal"),
        ({**GOOD, "answer": 1}, "question.answer"),
    ],
)
def test_a_bad_question_is_refused_with_where_and_why(tmp_path: Path, question: dict[str, Any], says: str) -> None:
    path = write(tmp_path, "bad", {"title": "t", "scenes": [{"title": "x", "model": "m", "question": question}]})
    with pytest.raises(TourError) as e:
        load_tour(path)
    assert "scenes.0" in str(e.value) and says in str(e.value)


def test_the_builtin_tour_asks_where_it_teaches() -> None:
    scenes = load_tour(BUILTIN_TOURS / f"{DEFAULT_TOUR}.json").scenes
    asked = {s.title for s in scenes if s.question is not None}
    assert {
        "Sequential memory",
        "The vanishing gradient",
        "LSTM and GRU: gates keep the gradient",
        "Applications: translation",
    } <= asked
