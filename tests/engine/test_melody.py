"""The melody's text form both ways, the note vocabulary, and the melody models of the zoo against their bigram."""

from __future__ import annotations

import functools
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from app.engine.card import LoadedModel
from app.engine.errors import BadNote
from app.engine.family import load_model
from app.engine.token.card import token_card
from app.engine.token.notes import Note, normalise, parse_notes, write_notes
from app.engine.token.trace import trace
from app.engine.vocab import UNK, Vocab

MODELS = Path(__file__).resolve().parents[2] / "models"
CELLS = ("rnn", "lstm", "gru")


# --- the text form ------------------------------------------------------------------------------------------


def test_notes_read_and_write_back() -> None:
    text = "C4:1 E4:0.5 R:2 F#4:1.5 Bb3:0.25 G#5:1/3 C-1:64 G9:0.125"
    notes = parse_notes(text)
    assert notes[0] == Note(60, Fraction(1)) and notes[2] == Note(None, Fraction(2)) and notes[2].is_rest
    assert [n.midi for n in notes] == [60, 64, None, 66, 58, 80, 0, 127]
    assert notes[5].duration == Fraction(1, 3)
    assert write_notes(notes) == text
    assert parse_notes(write_notes(notes)) == notes
    assert notes[3].to_json() == {"token": "F#4:1.5", "midi": 66, "duration": 1.5}


def test_one_spelling_per_sound_and_one_text_per_length() -> None:
    assert normalise("Db4:1 C#4:1.0 B#3:0.50 Cb4:1/2 E#4:2 Fb4:4/2 Gbb4:1 A##3:1 r:1 c4:.5") == [
        "C#4:1", "C#4:1", "C4:0.5", "B3:0.5", "F4:2", "E4:2", "F4:1", "B3:1", "R:1", "C4:0.5"
    ]  # fmt: skip
    assert normalise("  E4:1\n\tD4:1  ") == ["E4:1", "D4:1"]


@pytest.mark.parametrize(
    ("text", "token", "position", "problem"),
    [
        ("C4:1 H4:1", "H4:1", 1, "bad pitch 'H4'"),
        ("C4:1 D4:1 E4", "E4", 2, "a note is PITCH:DUR"),
        ("C4:0", "C4:0", 0, "more than 0"),
        ("C4:1 D4:-1", "D4:-1", 1, "bad duration '-1'"),
        ("C4:1 D4:quarter", "D4:quarter", 1, "bad duration 'quarter'"),
        ("C4:1 C10:1", "C10:1", 1, "out of range"),
        ("C4:1 Cb-1:1", "Cb-1:1", 1, "out of range"),
        ("C4:1 D4:1/0", "D4:1/0", 1, "division by zero"),
        ("C4:1 D4:65", "D4:65", 1, "at most 64"),
        ("C4:1 C#b4:1", "C#b4:1", 1, "bad pitch"),
        ("C4:1 X:1", "X:1", 1, "bad pitch 'X'"),
    ],
)
def test_a_bad_note_is_named_with_its_position(text: str, token: str, position: int, problem: str) -> None:
    with pytest.raises(BadNote) as e:
        parse_notes(text)
    assert (e.value.token, e.value.position) == (token, position)
    # the message counts from 1, as the person who wrote the melody does
    assert problem in e.value.problem and f"{token!r} at position {position + 1}:" in str(e.value)


def test_a_note_vocabulary_reads_any_spelling_and_reports_unknown_notes_by_position() -> None:
    vocab = Vocab(tokens=(UNK, "C4:1", "C#4:1", "D4:0.5"), level="note")
    enc = vocab.encode("C4:1 Db4:1 D4:1/2 A4:3 C4:1")
    assert enc.tokens == ["C4:1", "C#4:1", "D4:0.5", "A4:3", "C4:1"]
    assert enc.ids == [1, 2, 3, 0, 1] and enc.unknown == [3]
    assert vocab.decode([1, 2, 3]) == "C4:1 C#4:1 D4:0.5"
    assert Vocab.from_json(vocab.to_json()) == vocab
    with pytest.raises(BadNote, match="'Q4:1' at position 2:"):  # the second note
        vocab.encode("C4:1 Q4:1")


# --- the zoo's melody models --------------------------------------------------------------------------------


@functools.cache
def loaded(cell: str) -> LoadedModel:
    return load_model(MODELS, f"melody-{cell}")


@pytest.mark.parametrize("cell", CELLS)
def test_melody_card_and_examples(cell: str) -> None:
    m = loaded(cell)
    c = m.card
    assert (c.task, c.kind, m.vocab.level) == ("melody", "next_token", "note")
    assert 0 < c.train_seconds <= 180 and c.metrics["training"]["dry_run"] is False
    assert "music21" in c.data_source and c.examples
    for ex in c.examples:
        enc = m.vocab.encode(ex["text"])
        assert not enc.unknown, ex["text"]
        assert write_notes(parse_notes(ex["text"])) == " ".join(enc.tokens)


@pytest.mark.parametrize("cell", CELLS)
def test_melody_beats_its_baselines_on_held_out_tunes(cell: str) -> None:
    m: dict[str, Any] = loaded(cell).card.metrics
    assert m["heldout_bigram_bits_per_note"] < m["heldout_unigram_bits_per_note"]
    if cell in ("lstm", "gru"):
        assert m["heldout_bits_per_note"] < m["heldout_bigram_bits_per_note"] - 0.3, "well below the bigram"
    else:
        assert m["heldout_bits_per_note"] < m["heldout_unigram_bits_per_note"]
    assert m["heldout_tunes"] > 300 and m["heldout_notes"] > 10_000 and m["heldout_unk_rate"] < 0.01


@functools.cache
def heldout_rows() -> tuple[list[list[int]], list[list[int]], tuple[str, ...]]:
    """The held-out and training tunes as the cards' vocabulary reads them, from music21's corpus."""
    pytest.importorskip("music21")
    from app.training.tasks import melody

    tunes = melody.read_tunes(melody.COLLECTIONS)
    train, _, held = melody.split_tunes(len(tunes))
    vocab = melody.build_vocab([tunes[i] for i in train])
    rows = [[vocab.index(n.token) for n in tunes[i].notes] for i in held]
    train_rows = [[vocab.index(n.token) for n in tunes[i].notes] for i in train]
    return rows, train_rows, vocab.tokens


@pytest.mark.slow
def test_the_cards_figures_are_recomputed_from_the_corpus_and_the_weights() -> None:
    """Bits per note from the weights with plain torch.nn, and both baselines, on music21's own tunes."""
    from app.training.tasks.melody import NgramBaselines

    rows, train_rows, tokens = heldout_rows()
    for cell in CELLS:
        m = loaded(cell)
        assert tuple(m.card.vocab["tokens"]) == tokens
        assert len(rows) == m.card.metrics["heldout_tunes"] == len(m.card.metrics["heldout_tune_names"])
        state = {k: v for k, v in m.model.state_dict().items()}
        emb = torch.nn.Embedding.from_pretrained(state["embedding.weight"])  # type: ignore[no-untyped-call]
        cls = {"rnn": torch.nn.RNN, "lstm": torch.nn.LSTM, "gru": torch.nn.GRU}[cell]
        rnn = cls(token_card(m.card).embed_size, m.card.hidden_size, num_layers=m.card.num_layers, batch_first=True)
        rnn.load_state_dict({k[4:]: v for k, v in state.items() if k.startswith("rnn.")})
        bits, count = 0.0, 0
        with torch.no_grad():
            for ids in rows:
                out, _ = rnn(emb(torch.tensor([ids[:-1]])))
                logp = torch.log_softmax(out[0] @ state["head.weight"].T + state["head.bias"], -1)
                bits -= float(logp.gather(1, torch.tensor(ids[1:])[:, None]).sum()) / np.log(2)
                count += len(ids) - 1
        assert count == m.card.metrics["heldout_notes"]
        assert abs(bits / count - m.card.metrics["heldout_bits_per_note"]) < 2e-3
    uni, bi = NgramBaselines.fit(train_rows, len(tokens)).bits(rows)
    metrics = loaded("lstm").card.metrics
    assert abs(uni - metrics["heldout_unigram_bits_per_note"]) < 1e-3
    assert abs(bi - metrics["heldout_bigram_bits_per_note"]) < 1e-3


def test_a_melody_text_is_traced_note_by_note() -> None:
    m = loaded("gru")
    tr = trace(m, "E4:1 E4:1 F4:1 G4:1 G4:1 F4:1 E4:1 D4:1", top_k=3)
    assert tr.steps == 8 and tr.tokens[2] == "F4:1" and not tr.unknown
    assert all(m.vocab.tokens[i].count(":") == 1 for i in tr.top_ids[0])
    with pytest.raises(BadNote, match="'F4' at position 3:"):  # the third note
        trace(m, "E4:1 E4:1 F4 G4:1")
    unknown = trace(m, "E4:1 C8:0.125 E4:1")  # a valid note the vocabulary lacks: unknown, by position
    assert unknown.unknown == [1] and unknown.tokens[1] == "C8:0.125"
