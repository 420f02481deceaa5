"""`unrolled import`: a model trained elsewhere (torch.nn RNN/LSTM/GRU with an nn.Embedding and a Linear head)
into the models folder, as <id>.safetensors and a card <id>.json of task "imported".

Weights are read from safetensors, or from a torch state-dict file with torch.load(weights_only=True): no
pickled code ever runs. Their key names are matched to SeqModel's (`embedding.`, `rnn.`, `head.`) by the names
people use (`emb.weight`, `lstm.weight_ih_l0`, `fc.bias`, …) or by `--map FROM=TO`; every shape is inferred from
the weights and checked against the others and the vocabulary. Anything wrong raises ImportProblem, naming it,
before a byte is written; the two files are then written atomically (each to a temporary name, then renamed).
"""

from __future__ import annotations

import json
import os
import re
import tempfile
import time
import zipfile
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file
from torch import Tensor

from app.engine.card import ModelCard, card_text, save_weights
from app.engine.errors import ModelFileError
from app.engine.family import family_of
from app.engine.layers import GATES, MAX_LAYERS, Cell
from app.engine.series.card import SeriesCard
from app.engine.series.model import Scaling
from app.engine.token.card import TokenCard
from app.engine.token.model import SeqKind
from app.engine.vocab import UNK, Level, Vocab

LAB_PREFIX = "lab-"  # app.training.live names the models it trains live lab-<run>-<cell>
ID_PATTERN = r"^[a-z0-9][a-z0-9._-]{0,63}$"  # for JSON Schema; in Python, `$` also matches before a final "\n"
ID_RE = re.compile(r"[a-z0-9][a-z0-9._-]{0,63}")  # whole ids only: valid_id()
CLAIM_STALE = 600.0  # seconds after which a claim on an id is taken to be left by a writer that died
RECURRENT_RE = re.compile(r"^(weight|bias)_(ih|hh)_l(\d+)(_reverse)?$")
# Module names people give their parts, matched on a key's last module name ("model.emb.weight" → "emb").
EMBEDDING_NAMES = ("embedding", "emb", "embed", "embeddings", "encoder", "word_embeddings", "tok_emb")
HEAD_NAMES = ("head", "fc", "decoder", "out", "output", "linear", "classifier", "proj", "fc_out", "lm_head")
UNKNOWN_TOKENS = (UNK, "<UNK>", "[UNK]", "<oov>", "<OOV>")
CELL_OF_GATES: dict[int, Cell] = {len(GATES[c]) or 1: c for c in ("rnn", "lstm", "gru")}  # weight rows ÷ H


class ImportProblem(ValueError):
    """A weights, vocabulary or labels file that cannot be imported; the message says what is wrong."""


class Claimed(ImportProblem):
    """Another upload, import or delete of the same id is writing it now (in this server or another of the folder)."""


def valid_id(model_id: str) -> bool:
    """The whole id, to its last character: re's `$` would let "nl2\n" through (files "nl2\n.json" …)."""
    return ID_RE.fullmatch(model_id) is not None


@contextmanager
def claim(folder: Path, model_id: str) -> Iterator[None]:
    """The id's claim file, created with O_CREAT | O_EXCL (atomic, also between servers sharing the folder), for
    the block: one writer (upload, import or delete) of an id at a time; another gets Claimed. A claim older
    than CLAIM_STALE was left by a writer that died, and is taken over."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f".{model_id}.claim"
    for attempt in range(2):
        try:
            os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644))
            break
        except FileExistsError:
            try:
                stale = time.time() - path.stat().st_mtime > CLAIM_STALE
            except FileNotFoundError:
                stale = True  # released meanwhile: try again
            if attempt or not stale:
                raise Claimed(f"{model_id!r} is being written by another upload, import or delete; retry") from None
            path.unlink(missing_ok=True)
    try:
        yield
    finally:
        path.unlink(missing_ok=True)


@dataclass
class Imported:
    card: ModelCard
    state: dict[str, Tensor]  # SeqModel's names, float32
    matched: list[str]  # what matched what, for the person importing


# --- reading ---------------------------------------------------------------------------------------------


def read_weights(path: Path) -> dict[str, Tensor]:
    """A state dict from safetensors or a torch file (torch.load(weights_only=True): tensors only)."""
    try:
        head = path.open("rb").read(9)
    except OSError as e:
        raise ImportProblem(f"{path.name} cannot be read: {e.strerror}") from e
    if len(head) == 9 and head[8:9] == b"{":  # safetensors: a little-endian header length, then its JSON
        try:
            return load_file(str(path))
        except (SafetensorError, OSError, ValueError) as e:
            raise ImportProblem(f"{path.name} is a truncated or corrupt safetensors file: {e}") from e
    check_archive(path)
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises UnpicklingError, RuntimeError, EOFError, … by file
        text = str(e)
        if "Weights only load failed" in text or "Unsupported global" in text:
            raise ImportProblem(
                f"{path.name} is a pickle that holds objects other than tensors (a whole module or other classes); "
                "it was not loaded, because torch.load(weights_only=True) refuses to run pickled code. Save the "
                "model's state_dict() instead (torch.save(model.state_dict(), path)), or save it as safetensors"
            ) from e
        raise ImportProblem(
            f"{path.name} is a truncated or corrupt torch file ({type(e).__name__}: {text[:200]})"
        ) from e
    if isinstance(obj, dict) and len(obj) == 1 and isinstance(next(iter(obj.values())), dict):
        obj = next(iter(obj.values()))  # {"state_dict": {...}} or {"model": {...}}
    if not isinstance(obj, dict) or not obj:
        raise ImportProblem(f"{path.name} holds a {type(obj).__name__}, not a state dict (parameter name → tensor)")
    bad = [k for k, v in obj.items() if not isinstance(k, str) or not isinstance(v, Tensor)]
    if bad:
        raise ImportProblem(f"{path.name}: {bad[0]!r} is not a tensor; a state dict maps parameter names to tensors")
    return cast(dict[str, Tensor], obj)


def check_archive(path: Path) -> None:
    """A torch file (a zip archive since torch 1.6) must hold its records stored, as torch.save writes them, and
    no more bytes than the file: torch.load inflates a DEFLATE-compressed record to the size the archive claims
    before anything else is checked (a 1 MB upload took the server to 3.3 GB), so such a file is refused unread."""
    if not zipfile.is_zipfile(path):
        return  # torch's legacy format, or not a torch file: torch.load says which
    try:
        with zipfile.ZipFile(path) as archive:
            records = archive.infolist()
    except (zipfile.BadZipFile, OSError, ValueError, EOFError) as e:
        raise ImportProblem(f"{path.name} is a truncated or corrupt torch file (its zip archive: {e})") from e
    compressed = next((r for r in records if r.compress_type != zipfile.ZIP_STORED), None)
    if compressed is not None:
        raise ImportProblem(
            f"{path.name}: its record {compressed.filename[:100]!r} is compressed ({compressed.compress_size} bytes "
            f"that inflate to {compressed.file_size}); torch.save stores records uncompressed, and a compressed "
            "one is not loaded (it could inflate without bound). Save it again with torch.save, or as safetensors"
        )
    total, size = sum(r.file_size for r in records), path.stat().st_size
    if total > size:
        raise ImportProblem(f"{path.name}: its records claim {total} bytes, more than the file's {size}")


def read_json(path: Path, what: str) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except OSError as e:
        raise ImportProblem(f"the {what} {path.name} cannot be read: {e.strerror}") from e
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ImportProblem(f"the {what} {path.name} is not valid JSON: {e}") from e
    except RecursionError:  # [[[[…: the decoder recurses once a level
        raise ImportProblem(f"the {what} {path.name} is nested too deeply: a flat JSON list is expected") from None


def read_vocab_tokens(data: Any, name: str) -> list[str]:
    """A JSON list of tokens (index = id) or a {token: id} map whose ids are 0 … n−1, each once."""
    if isinstance(data, list):
        tokens = data
    elif isinstance(data, dict):
        ids = list(data.values())
        if not all(isinstance(i, int) and not isinstance(i, bool) for i in ids):
            raise ImportProblem(f"the vocabulary {name} maps tokens to ids: every value must be an integer")
        if sorted(ids) != list(range(len(ids))):
            raise ImportProblem(f"the vocabulary {name}'s ids must be 0 … {len(ids) - 1}, each once")
        tokens = sorted(data, key=data.__getitem__)
    else:
        raise ImportProblem(f"the vocabulary {name} must be a JSON list of tokens or a {{token: id}} map")
    if not tokens or not all(isinstance(t, str) and t for t in tokens):
        raise ImportProblem(f"the vocabulary {name} must hold non-empty strings")
    first: dict[str, int] = {}  # token → its first position: one pass (tokens.count() in a loop was quadratic)
    for i, token in enumerate(tokens):
        at = first.setdefault(token, i)
        if at != i:
            raise ImportProblem(f"the vocabulary {name} holds {token[:64]!r} twice: at positions {at} and {i}")
    return list(tokens)


# --- matching key names ----------------------------------------------------------------------------------


def apply_maps(state: dict[str, Tensor], maps: Sequence[str]) -> dict[str, Tensor]:
    """--map FROM=TO: a key, or every key under the module FROM, renamed (`--map my_rnn=rnn`)."""
    out = dict(state)
    for m in maps:
        src, sep, dst = m.partition("=")
        if not sep or not src or not dst:
            raise ImportProblem(f"--map {m!r}: write FROM=TO, e.g. --map my_rnn=rnn or --map proj.w=head.weight")
        hits = [k for k in out if k == src or k.startswith(src + ".")]
        if not hits:
            raise ImportProblem(f"--map {m!r}: no key is {src!r} or starts with {src + '.'!r}")
        for k in hits:
            out[dst + k[len(src) :]] = out.pop(k)
    return out


def _modules(state: dict[str, Tensor]) -> dict[str, dict[str, Tensor]]:
    """Keys grouped by module: "model.lstm.weight_ih_l0" → {"model.lstm": {"weight_ih_l0": …}}."""
    mods: dict[str, dict[str, Tensor]] = {}
    for key, value in state.items():
        mod, _, param = key.rpartition(".")
        mods.setdefault(mod, {})[param] = value
    return mods


def _pick(mods: dict[str, dict[str, Tensor]], names: Sequence[str], fits: Callable[[dict[str, Tensor]], bool]) -> str:
    """The one module whose last name is one of `names` (in their order of preference) and whose keys fit."""
    for name in names:
        hits = [m for m in mods if m.rpartition(".")[2] == name and fits(mods[m])]
        if len(hits) > 1:
            raise ImportProblem(f"{hits} could each be the {name}: say which with --map FROM=TO")
        if hits:
            return hits[0]
    return ""


def match_keys(state: dict[str, Tensor], embedded: bool = True) -> tuple[dict[str, Tensor], list[str]]:
    """SeqModel's names for a state dict's keys (SeriesModel's, `embedded=False`: no embedding), and what matched
    what."""
    mods = _modules(state)
    recurrent = [m for m, ps in mods.items() if ps and all(RECURRENT_RE.match(p) for p in ps)]
    if not recurrent:
        raise ImportProblem(
            "no recurrent layer found: expected keys like lstm.weight_ih_l0 (torch.nn.RNN/LSTM/GRU's names); "
            "name yours with --map FROM=rnn"
        )
    if len(recurrent) > 1:
        raise ImportProblem(f"several recurrent modules {recurrent}: import one (name it with --map FROM=rnn)")
    rnn = recurrent[0]
    rest = {m: ps for m, ps in mods.items() if m != rnn}
    embedding = _pick(rest, EMBEDDING_NAMES, lambda ps: set(ps) == {"weight"} and ps["weight"].dim() == 2)
    head = _pick(rest, HEAD_NAMES, lambda ps: set(ps) <= {"weight", "bias"} and ps["weight"].dim() == 2)
    if not embedded and embedding:
        raise ImportProblem(
            f"{embedding}.weight looks like an nn.Embedding: a model that reads tokens needs its vocabulary "
            "(--vocab VOCAB.json); without one, the weights must read numbers directly (no embedding)"
        )
    if embedded and not embedding:
        raise ImportProblem(
            f"no embedding found among {sorted(rest)}: expected emb.weight, embedding.weight or encoder.weight "
            "(an nn.Embedding); name yours with --map FROM=embedding"
        )
    if not head:
        raise ImportProblem(
            f"no linear head found among {sorted(set(rest) - {embedding})}: expected fc., decoder., out., "
            "linear. or head.weight (an nn.Linear); name yours with --map FROM=head"
        )
    left = sorted(f"{m}.{p}" for m, ps in rest.items() if m not in (embedding, head) for p in ps)
    if left:
        raise ImportProblem(
            f"keys that are none of embedding, recurrent layers and head: {left[:5]}; drop or --map them"
        )
    out: dict[str, Tensor] = {}
    matched = []
    for src, dst in ((embedding, "embedding"), (rnn, "rnn"), (head, "head"))[0 if embedded else 1 :]:
        for p, v in mods[src].items():
            out[f"{dst}.{p}"] = v
        matched.append(f"{src}.* → {dst}.*" if src != dst else f"{src}.*")
    return out, matched


# --- shapes ----------------------------------------------------------------------------------------------


def infer(state: dict[str, Tensor], cell: Cell | None) -> tuple[Cell, int, int, int, bool, dict[str, Tensor]]:
    """(cell, input size, hidden size, layers, bidirectional) from the weights, every shape checked; missing
    biases (bias=False) filled with zeros, which is the same model. The input size is the embedding's width, or
    with no embedding (a series model) the numbers weight_ih_l0 reads."""
    w_ih = state.get("rnn.weight_ih_l0")
    emb = state.get("embedding.weight")
    w_hh = state.get("rnn.weight_hh_l0")
    if w_hh is None or w_hh.dim() != 2:
        raise ImportProblem("rnn.weight_hh_l0 is missing or not a matrix: every layer needs weight_ih and weight_hh")
    rows, H = w_hh.shape
    if H == 0 or rows % H or rows // H not in CELL_OF_GATES:
        raise ImportProblem(
            f"weight_hh_l0 has shape {tuple(w_hh.shape)}: its rows must be 1, 3 or 4 × its columns (the hidden "
            "size) for an RNN, GRU or LSTM"
        )
    found = CELL_OF_GATES[rows // H]
    if cell is not None and cell != found:
        raise ImportProblem(
            f"--cell {cell}, but weight_hh_l0's {rows} rows are {rows // H} × H: the weights are a {found}"
        )
    layers_found = {int(m.group(3)) for k in state if (m := RECURRENT_RE.match(k.removeprefix("rnn.")))}
    L = max(layers_found) + 1
    if layers_found != set(range(L)):
        raise ImportProblem(f"the recurrent layers are {sorted(layers_found)}: they must be 0 … {L - 1}, none missing")
    if L > MAX_LAYERS:
        raise ImportProblem(f"{L} recurrent layers: at most {MAX_LAYERS} can be traced")
    bidirectional = any(k.endswith("_reverse") for k in state if k.startswith("rnn."))
    D = 2 if bidirectional else 1
    if emb is None and (w_ih is None or w_ih.dim() != 2):
        raise ImportProblem("rnn.weight_ih_l0 is missing or not a matrix: every layer needs weight_ih and weight_hh")
    E = emb.shape[1] if emb is not None else cast(Tensor, w_ih).shape[1]
    for k in range(L):
        for s in ("", "_reverse")[:D]:
            in_size = E if k == 0 else D * H
            want = {f"weight_ih_l{k}{s}": (rows, in_size), f"weight_hh_l{k}{s}": (rows, H)}
            for name, shape in want.items():
                if f"rnn.{name}" not in state:
                    raise ImportProblem(f"{name} is missing (found {'bidirectional' if D == 2 else 'one-direction'} "
                                        f"layers 0 … {L - 1})")  # fmt: skip
                got = tuple(state[f"rnn.{name}"].shape)
                if got != shape:
                    first = "the embedding size" if emb is not None else "the input size"
                    reason = first if k == 0 and "ih" in name else f"{D} × the hidden size {H}"
                    raise ImportProblem(f"{name} has shape {got}; the weights imply {shape} ({rows} rows, {reason})")
            for b in ("ih", "hh"):
                key = f"rnn.bias_{b}_l{k}{s}"
                if key not in state:
                    state[key] = torch.zeros(rows)
                elif tuple(state[key].shape) != (rows,):
                    raise ImportProblem(f"bias_{b}_l{k}{s} has shape {tuple(state[key].shape)}; expected ({rows},)")
    head_w = state["head.weight"]
    if head_w.shape[1] != D * H:
        raise ImportProblem(
            f"the head's weight has shape {tuple(head_w.shape)}: it must read the top layer's {D * H} numbers"
            + (" (both directions)" if D == 2 else "")
        )
    if "head.bias" not in state:
        state["head.bias"] = torch.zeros(head_w.shape[0])
    elif tuple(state["head.bias"].shape) != (head_w.shape[0],):
        raise ImportProblem(
            f"the head's bias has shape {tuple(state['head.bias'].shape)}; expected ({head_w.shape[0]},)"
        )
    return found, E, H, L, bidirectional, state


def check_values(state: dict[str, Tensor]) -> dict[str, Tensor]:
    """float32 copies; NaN or infinite weights, and integer tensors, are refused by name."""
    out = {}
    for key, value in state.items():
        if not value.is_floating_point():
            raise ImportProblem(f"{key} holds {value.dtype} numbers: weights are floating point")
        v = value.detach().to(torch.float32).contiguous()
        if not bool(torch.isfinite(v).all()):
            bad = int((~torch.isfinite(v)).sum())
            raise ImportProblem(f"{key} holds {bad} NaN or infinite value{'s' * (bad > 1)}: the weights are broken")
        out[key] = v
    return out


# --- the whole import ------------------------------------------------------------------------------------


def infer_level(tokens: Sequence[str]) -> Level:
    """char if every token but <…>/[…] specials is one character, else word."""
    plain = [t for t in tokens if not (t.startswith(("<", "[")) and t.endswith((">", "]")) and len(t) > 2)]
    return "char" if plain and all(len(t) == 1 for t in plain) else "word"


@dataclass(frozen=True)
class SeriesOptions:
    """What a series model's weights cannot say: the names of the numbers a step reads, and the scaling the model
    was trained on (it reads (value − mean) / std). Unset, the model reads the numbers as they are given."""

    features: tuple[str, ...] = ()
    mean: tuple[float, ...] = ()
    std: tuple[float, ...] = ()
    units: str = ""
    step: str = ""


def _per_feature(values: tuple[float, ...], F: int, what: str, default: float) -> tuple[float, ...]:
    if not values:
        return (default,) * F
    if len(values) == 1:
        return values * F
    if len(values) != F:
        raise ImportProblem(f"--{what} gives {len(values)} numbers; the model reads {F} per step: give 1 or {F}")
    return values


def build_series(weights: Path, model_id: str, raw: dict[str, Tensor], maps_matched: list[str], cell: Cell | None,
                 options: SeriesOptions) -> Imported:  # fmt: skip
    """A model that reads numbers (no embedding) and whose head predicts the next step's numbers: SeriesModel."""
    state, matched = match_keys(raw, embedded=False)
    found, F, H, L, bidirectional, state = infer(state, cell)
    if bidirectional:
        raise ImportProblem(
            "the layers are bidirectional: a series model forecasts the next step from the steps before it, and a "
            "reverse direction reads the future; a bidirectional model of tokens can be imported with --vocab"
        )
    outputs = state["head.weight"].shape[0]
    if outputs != F:
        raise ImportProblem(
            f"the head has {outputs} outputs for {F} input number{'s' * (F > 1)} a step: a series model predicts "
            "the next step's numbers, as many as it reads"
        )
    names = options.features or (("value",) if F == 1 else tuple(f"x{i + 1}" for i in range(F)))
    if len(names) != F:
        raise ImportProblem(f"--features names {len(names)} numbers; the model reads {F} per step")
    try:
        scaling = Scaling(
            features=names,
            mean=_per_feature(options.mean, F, "mean", 0.0),
            std=_per_feature(options.std, F, "std", 1.0),
            units=options.units,
            step=options.step,
        )
    except ModelFileError as e:
        raise ImportProblem(f"--mean/--std: {e}".replace("card is not valid: ", "")) from e
    card = ModelCard(
        id=model_id,
        task="imported",
        cell=found,
        kind="series",
        hidden_size=H,
        num_layers=L,
        vocab=Vocab(tokens=(UNK,), level="value", case="keep").to_json(),
        description=(
            f"imported from {weights.name}: a {L}-layer {found.upper()} ({H} hidden units) that reads {F} "
            f"number{'s' * (F > 1)} a step ({', '.join(names)}) and predicts the next step's"
        ),
        examples=[
            {"values": [list(scaling.mean) if F > 1 else scaling.mean[0]] * 8, "note": "eight steps at the mean"}
        ],
        data_source=f"imported from {weights.name}",
        block=SeriesCard(scaling),
    )
    try:
        family_of(card.kind).build(card, state)
    except (ModelFileError, ValueError) as e:
        raise ImportProblem(str(e)) from e
    matched = maps_matched + matched
    matched.append(
        f"{found}: {L} layer{'s' * (L > 1)}, reads {F} number{'s' * (F > 1)} a step (no embedding), hidden {H}, "
        f"head {outputs} (series: the next step's numbers)"
    )
    return Imported(card, state, matched)


def build(
    weights: Path,
    vocab_path: Path | None,
    model_id: str,
    *,
    maps: Sequence[str] = (),
    labels_path: Path | None = None,
    cell: Cell | None = None,
    level: Level | None = None,
    unk: str | None = None,
    series: SeriesOptions | None = None,
) -> Imported:
    """Everything an import writes, checked; raises ImportProblem naming the first thing wrong. With no
    vocabulary, the weights must be a series model's (numbers in, the next step's numbers out)."""
    if not valid_id(model_id):
        raise ImportProblem(f"--id {model_id!r}: use lower-case letters, digits, '.', '_' and '-' (up to 64)")
    if model_id.startswith(LAB_PREFIX):  # the lab's models trained live (app/training/live.py) go by these ids
        raise ImportProblem(f"--id {model_id!r}: ids starting with {LAB_PREFIX!r} are the lab's: choose another")
    raw = check_values(apply_maps(read_weights(weights), maps))  # named as in the file
    if vocab_path is None:
        if labels_path is not None:
            raise ImportProblem("--labels without --vocab: a classifier reads tokens, and needs its vocabulary")
        return build_series(weights, model_id, raw, [], cell, series or SeriesOptions())
    if series is not None and series != SeriesOptions():
        raise ImportProblem(
            "--features, --mean and --std describe a series model's numbers: not with a vocabulary (a model of tokens)"
        )
    state, matched = match_keys(raw)
    found, E, H, L, bidirectional, state = infer(state, cell)
    V = state["embedding.weight"].shape[0]
    tokens = read_vocab_tokens(read_json(vocab_path, "vocabulary"), vocab_path.name)
    if len(tokens) != V:
        raise ImportProblem(
            f"the vocabulary {vocab_path.name} has {len(tokens)} tokens but the embedding has {V} rows: they must "
            "be the same, one row per token id"
        )
    labels: list[str] | None = None
    if labels_path is not None:
        data = read_json(labels_path, "label list")
        if not isinstance(data, list) or not data or not all(isinstance(x, str) for x in data):
            raise ImportProblem(f"the labels {labels_path.name} must be a JSON list of strings")
        if len(set(data)) != len(data):
            raise ImportProblem(f"the labels {labels_path.name} hold a label twice")
        labels = data
    outputs = state["head.weight"].shape[0]
    if labels is not None and outputs != len(labels):
        raise ImportProblem(
            f"the head has {outputs} outputs but {labels_path and labels_path.name} has {len(labels)} labels"
        )
    if labels is None and outputs != V:
        raise ImportProblem(
            f"the head has {outputs} outputs and the vocabulary {V} tokens: a next-token model predicts every "
            "token; a classifier needs its labels (--labels LABELS.json)"
        )
    # Token ids stay the script's (no row of the embedding or head moves, no token is renamed): the unknown token
    # is the one --unk names, else one of the usual spellings, else none (text outside the vocabulary is refused).
    if unk is not None and unk not in tokens:
        raise ImportProblem(f"--unk {unk!r} is not in the vocabulary {vocab_path.name}")
    unk_token = unk if unk is not None else next((t for t in UNKNOWN_TOKENS if t in tokens), None)
    lv = level or infer_level(tokens)
    try:
        vocab = Vocab(tokens=tuple(tokens), level=lv, case="keep", unk=unk_token)
    except ValueError as e:
        raise ImportProblem(f"the vocabulary {vocab_path.name}: {e}") from e
    matched.append(
        f"unknown token: {unk_token!r} (id {vocab.unk_id})"
        if unk_token is not None
        else f"no unknown token (none of {', '.join(UNKNOWN_TOKENS)}; --unk names one): text outside the "
        "vocabulary is refused"
    )
    plain = [t for t in tokens if t != unk_token][:5]  # an example of its own tokens
    kind: SeqKind = "classify" if labels is not None else "next_token"
    card = ModelCard(
        id=model_id,
        task="imported",
        cell=found,
        kind=kind,
        hidden_size=H,
        num_layers=L,
        bidirectional=bidirectional,
        vocab=vocab.to_json(),
        block=TokenCard(embed_size=E, labels=labels),
        description=(
            f"imported from {weights.name}: a {L}-layer {'bidirectional ' * bidirectional}{found.upper()} "
            f"({H} hidden units), {lv}-level, {'a classifier' if labels else 'next-token'}"
        ),
        examples=[
            {
                "text": "".join(plain) if lv == "char" else " ".join(plain),
                "note": "tokens of its vocabulary",
            }
        ],
        data_source=f"imported from {weights.name}",
    )
    try:  # the card must build the model these weights fill, exactly
        family_of(card.kind).build(card, state)
    except (ModelFileError, ValueError) as e:
        raise ImportProblem(str(e)) from e
    matched.append(
        f"{found}: {L} layer{'s' * (L > 1)}{', bidirectional' if bidirectional else ''}, embedding {V} × {E}, "
        f"hidden {H}, head {outputs} ({kind}), vocabulary {lv}-level"
    )
    return Imported(card, state, matched)


def _write_atomic(folder: Path, name: str, write: Callable[[Path], None]) -> Path:
    """Write to a hidden temporary file in the folder, then rename it: a reader sees the old file or the new."""
    fd, tmp = tempfile.mkstemp(prefix=f".{name}.", suffix=".tmp", dir=folder)
    os.close(fd)
    path = Path(tmp)
    try:
        write(path)
        return path
    except BaseException:
        path.unlink(missing_ok=True)
        raise


def _write_text(path: Path, text: str) -> None:
    path.write_text(text, encoding="utf-8")


def write(imported: Imported, folder: Path, claimed: bool = False) -> tuple[Path, Path]:
    """<id>.safetensors, then <id>.json (the zoo looks for cards: a card never names weights not yet there), under
    the id's claim (unless the caller holds it): a card and weights of two different writers never pair up."""
    if not claimed:
        with claim(folder, imported.card.id):
            return write(imported, folder, claimed=True)
    card = imported.card
    folder.mkdir(parents=True, exist_ok=True)
    card_path = folder / f"{card.id}.json"
    if card_path.exists():
        try:
            old = json.loads(card_path.read_text())
        except (OSError, json.JSONDecodeError):
            old = {}
        if old.get("task") != "imported":
            raise ImportProblem(f"{card.id} is a model of the zoo, not an imported one: choose another --id")
    weights_path = folder / f"{card.id}.safetensors"
    tmp_w = _write_atomic(folder, weights_path.name, lambda p: save_weights(imported.state, p))
    text = card_text(card)
    try:
        tmp_c = _write_atomic(folder, card_path.name, lambda p: _write_text(p, text))
    except BaseException:
        tmp_w.unlink(missing_ok=True)
        raise
    os.replace(tmp_w, weights_path)
    os.replace(tmp_c, card_path)
    return weights_path, card_path
