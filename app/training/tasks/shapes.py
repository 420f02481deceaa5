"""shapes: caption a picture of two shapes ("a small red circle left of a big blue square"), with a convolutional
encoder and a recurrent decoder that attends over the picture's regions (the caption family, issue 26).

Every batch is drawn afresh by app/training/tasks/shapes_data.py's rules from the run's seed: the models never see
the same scene twice, and never see a held-out colour–shape combination (shapes_data.HELDOUT). Two fixed sets
measure them, each reported in the card's `by_set`:
- "scenes": scenes drawn as training draws them, from their own seed (combinations trained on; the scenes new);
- "combinations": every scene shows a held-out combination (a red triangle, a green circle or a blue square).
For each: exact match (greedy, against the caption trained on), either-order match (either true caption: the other
shape named first with the inverse relation), corpus BLEU-4 against both true captions, the share of scenes whose
named held-out shape is named right (combinations), and the share of attention that falls inside the named shape's
box while its three words are written (teacher-forced; a grid cell's weight spread over its 8 × 8 pixels, so a cell
half inside the box counts half), beside the looser share on the cells the box touches and what attention spread
evenly would give (chance).
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn
from torch.nn import functional as F

from app.engine.caption.card import CaptionCard
from app.engine.caption.model import BOS, BOS_ID, EOS, EOS_ID, EQUATIONS, CaptionConfig, CaptionModel, greedy_batch
from app.engine.layers import Cell
from app.engine.vocab import UNK, Vocab
from app.training.tasks.base import Batch, Budget, KeyMetric, ModelSize, Task, TaskData, percent, rounded
from app.training.tasks.shapes_data import (
    CLEAR,
    GAP,
    HELDOUT,
    IMAGE_SIZE,
    WORDS,
    Scene,
    batch_pixels,
    eval_sets,
    random_scene,
    scenes,
)

# Per cell, each the best of the runs measured (seed 0, 4500 steps of 32 scenes, exact match on new scenes; the
# head reading c_{t−1}): H 128 (E 32) against 64 (E 16): LSTM 85.4 %, RNN 40.6 % (at H 64 before c_{t−1}: 47.0,
# 34.0); the GRU at H 96 (E 24) 60.0 %, at 64 45.8 % (49.4 at lr 2e-3), at 128 38.4 % (at H 64 before c_{t−1}:
# 70.6). The runs differ more than the sizes explain: the dev curves still rise at the end. A step at H 128 costs
# ~10 % more CPU than at 64 (the encoder and attention dominate).
SIZES: dict[Cell, ModelSize] = {
    "rnn": ModelSize(embed_size=32, hidden_size=128),
    "lstm": ModelSize(embed_size=32, hidden_size=128),
    "gru": ModelSize(embed_size=24, hidden_size=96),
}
MAX_LENGTH = 12  # tokens: the longest caption has 10 words, and </s>
CHANNELS = (8, 16, 32)
EVAL_SCENES = 500  # per evaluation set
DEV_SEED = 20_261_209  # the dev scenes the final weights are chosen on: neither trained on nor evaluated on
DEV_SCENES = 200
ATTENTION_WORDS = ((1, 2, 3), (-3, -2, -1))  # where the first and the second shape's words are in a caption


def words_vocab() -> Vocab:
    return Vocab((UNK, BOS, EOS, *WORDS), level="word", case="lower")


def pixels_vocab() -> Vocab:
    """What a caption model reads: pixels, no text (the common card's vocab, as a series model's)."""
    return Vocab((UNK,), level="value")


def caption_ids(vocab: Vocab, caption: str) -> list[int]:
    return [*vocab.encode(caption).ids, EOS_ID]


def scene_batch(vocab: Vocab, batch: list[Scene]) -> Batch:
    """Pixels (B, 64, 64, 3) uint8 as `ids`, decoder inputs (<s> y_0 … y_{T−2}) and targets (−100 padding)."""
    targets = [caption_ids(vocab, s.caption) for s in batch]
    T = max(len(t) for t in targets)
    dec = torch.zeros((len(batch), T), dtype=torch.long)
    tgt = torch.full((len(batch), T), -100, dtype=torch.long)
    for i, t in enumerate(targets):
        dec[i, : len(t)] = torch.tensor([BOS_ID, *t[:-1]])
        tgt[i, : len(t)] = torch.tensor(t)
    return Batch(ids=torch.from_numpy(batch_pixels(batch)), targets=tgt, decoder_ids=dec)


@dataclass
class ShapesData(TaskData):
    words: Vocab = field(default_factory=words_vocab)
    sets: dict[str, list[Scene]] = field(default_factory=dict)
    dev: list[Scene] = field(default_factory=list)

    def batch(self, rng: np.random.Generator, batch_size: int) -> Batch:
        return scene_batch(self.words, [random_scene(rng) for _ in range(batch_size)])

    def after_step(self, batch: Batch, logits: Tensor) -> dict[str, float]:
        real = batch.targets != -100
        return {"acc": float(((logits.argmax(-1) == batch.targets) & real).sum() / real.sum())}

    def dev_score(self, model: CaptionModel) -> float | None:
        """Exact match on the dev scenes; a lower loss on them breaks a tie."""
        batch = scene_batch(self.words, self.dev)
        assert batch.decoder_ids is not None
        with torch.no_grad():
            logits = model(batch.ids, batch.decoder_ids)
            nll = float(F.cross_entropy(logits.reshape(-1, logits.shape[-1]), batch.targets.reshape(-1)))
        outs = captions(model, self.words, self.dev)
        right = sum(o == s.caption for o, s in zip(outs, self.dev, strict=True))
        return right / len(self.dev) - 1e-3 * min(nll, 1.0)


def captions(model: CaptionModel, vocab: Vocab, batch: list[Scene]) -> list[str]:
    """Greedy captions of many scenes, as text."""
    was_training = model.training
    model.eval()
    images = torch.from_numpy(batch_pixels(batch))
    outs = greedy_batch(model, images, MAX_LENGTH)
    model.train(was_training)
    return [vocab.decode([i for i in o if i != EOS_ID]) for o in outs]


def bleu4(hypotheses: list[str], references: list[tuple[str, ...]]) -> float:
    """Corpus BLEU-4 (Papineni et al. 2002): clipped n-gram precisions against all references, their geometric
    mean, the brevity penalty from the reference closest in length to each hypothesis."""
    matched, total = [0] * 4, [0] * 4
    hyp_len = ref_len = 0
    for hyp, refs in zip(hypotheses, references, strict=True):
        h = hyp.split()
        rs = [r.split() for r in refs]
        hyp_len += len(h)
        ref_len += min((abs(len(r) - len(h)), len(r)) for r in rs)[1]
        for n in range(1, 5):
            grams = Counter(tuple(h[i : i + n]) for i in range(len(h) - n + 1))
            most: Counter[tuple[str, ...]] = Counter()
            for r in rs:
                most |= Counter(tuple(r[i : i + n]) for i in range(len(r) - n + 1))
            matched[n - 1] += sum(min(c, most[g]) for g, c in grams.items())
            total[n - 1] += max(len(h) - n + 1, 0)
    if min(matched) == 0:
        return 0.0
    log_precision = sum(math.log(m / t) for m, t in zip(matched, total, strict=True)) / 4
    brevity = 1.0 if hyp_len > ref_len else math.exp(1 - ref_len / max(hyp_len, 1))
    return brevity * math.exp(log_precision)


def in_box(scene_shapes: tuple[Any, ...], grid: int) -> np.ndarray:
    """(2, G) whether grid cell j's region overlaps each shape's box."""
    return box_share(scene_shapes, grid) > 0


def box_share(scene_shapes: tuple[Any, ...], grid: int) -> np.ndarray:
    """(2, G) the share of grid cell j's region (its pixels) that lies inside each shape's box."""
    cell = IMAGE_SIZE // grid
    out = np.zeros((2, grid * grid))
    for k, shape in enumerate(scene_shapes):
        x0, y0, x1, y1 = shape.box
        for j in range(grid * grid):
            r, c = divmod(j, grid)
            across = max(0, min(x1, (c + 1) * cell) - max(x0, c * cell))
            down = max(0, min(y1, (r + 1) * cell) - max(y0, r * cell))
            out[k, j] = across * down / (cell * cell)
    return out


@torch.no_grad()
def attention_in_box(model: CaptionModel, vocab: Vocab, batch: list[Scene]) -> dict[str, float]:
    """Where attention falls while a shape's three words are written (teacher-forced), averaged over those words:
    - "in_box": the share of attention inside the named shape's box, each cell's weight spread evenly over its
      pixels (a cell half inside the box counts half);
    - "on_box_cells": the share on the cells the box touches at all (a looser reading: a box of 10 px can touch
      nine cells, 576 px);
    - "chance": what "in_box" would be if attention were spread evenly over the picture (the box's area / 64²)."""
    sb = scene_batch(vocab, batch)
    assert sb.decoder_ids is not None
    grid = model.encode(sb.ids)
    out, _ = model.decoder(model.embedding(sb.decoder_ids), model.start(grid))
    _, alpha, _ = model.output(out, grid)  # (B, T, G)
    shares: dict[str, list[float]] = {"in_box": [], "on_box_cells": [], "chance": []}
    for b, scene in enumerate(batch):
        area = box_share(scene.shapes, model.config.grid)
        n = len(scene.caption.split())
        for k, positions in enumerate(ATTENTION_WORDS):
            for p in positions:
                a = alpha[b, p if p >= 0 else n + p].double().numpy()  # the word's step (the target y_t is word t)
                shares["in_box"].append(float(a @ area[k]))
                shares["on_box_cells"].append(float(a[area[k] > 0].sum()))
                shares["chance"].append(float(area[k].mean()))
    return {name: float(np.mean(v)) for name, v in shares.items()}


def set_scores(model: CaptionModel, vocab: Vocab, batch: list[Scene]) -> dict[str, Any]:
    outs = captions(model, vocab, batch)
    exact = sum(o == s.caption for o, s in zip(outs, batch, strict=True))
    either = sum(o in s.captions for o, s in zip(outs, batch, strict=True))
    scores: dict[str, Any] = {
        "n": len(batch),
        "exact_match": rounded(exact / len(batch)),
        "either_order_match": rounded(either / len(batch)),
        "bleu4": rounded(bleu4(outs, [s.captions for s in batch])),
    }
    attention = attention_in_box(model, vocab, batch)
    scores["attention_in_box"] = rounded(attention["in_box"])
    scores["attention_on_box_cells"] = rounded(attention["on_box_cells"])
    scores["attention_in_box_chance"] = rounded(attention["chance"])
    held = [(o, s) for o, s in zip(outs, batch, strict=True) if s.heldout()]
    if held:  # a held-out shape named right: its "colour shape" in the output, wherever it stands
        named = sum(all(f"{x.colour} {x.shape}" in o for x in s.shapes if x.combination in HELDOUT) for o, s in held)
        scores["heldout_shape_named"] = rounded(named / len(held))
    return scores


class ShapesTask(Task[ShapesData]):
    name = "shapes"
    title = "Image captioning: two shapes and where they are"
    kind = "caption"
    description = (
        "Captions pictures of two shapes: a small convolutional network makes an 8 × 8 grid of features; a "
        "recurrent decoder writes the caption word by word, attending over the grid. A red triangle, a green "
        "circle and a blue square are never shown in training."
    )

    def size(self, cell: Cell) -> ModelSize:
        return SIZES[cell]

    def budget(self, cell: Cell) -> Budget:
        return Budget(steps=4500, batch_size=32, lr=3e-3, clip=1.0, lr_floor=0.05, max_seconds=170.0)

    def dry_size(self, cell: Cell) -> ModelSize:
        return ModelSize(embed_size=8, hidden_size=16)

    def build_model(self, cell: Cell, size: ModelSize, data: ShapesData, variant: str) -> nn.Module:
        return CaptionModel(
            CaptionConfig(cell, len(data.words), size.embed_size, size.hidden_size, CHANNELS, attention_size=32)
        )

    def init_model(self, model: CaptionModel, data: ShapesData) -> None:
        """LSTM: forget-gate bias 1 (the sum bias_ih + bias_hh)."""
        if model.config.cell == "lstm":
            h = model.config.hidden_size
            with torch.no_grad():
                model.decoder.get_parameter("bias_ih_l0")[h : 2 * h].fill_(1.0)
                model.decoder.get_parameter("bias_hh_l0")[h : 2 * h].fill_(0.0)

    def forward(self, model: CaptionModel, batch: Batch) -> Tensor:
        assert batch.decoder_ids is not None
        logits: Tensor = model(batch.ids, batch.decoder_ids)
        return logits

    def loss(self, logits: Tensor, batch: Batch) -> Tensor:
        return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), batch.targets.reshape(-1), ignore_index=-100)

    def card_block(self, model: CaptionModel, data: ShapesData, size: ModelSize) -> CaptionCard:
        cfg = model.config
        return CaptionCard(words=data.words.to_json(), embed_size=cfg.embed_size, channels=list(cfg.channels),
                           attention_size=cfg.attention_size, max_length=MAX_LENGTH, equations=EQUATIONS)  # fmt: skip

    def load(self, dry_run: bool, cache: Path) -> ShapesData:
        n = EVAL_SCENES // 10 if dry_run else EVAL_SCENES
        held = ", ".join(f"{c} {s}" for c, s in HELDOUT)
        source = (
            f"drawn with Pillow at training time by app/training/tasks/shapes_data.py's rules (64 × 64, two filled "
            f"shapes on white, boxes at least {GAP} px apart, the centres' axis differences at least {CLEAR} px "
            f"apart), a fresh scene every time from the run's seed; never shown in training: {held}. Evaluated on "
            f"{n} new scenes and {n} scenes that each show a held-out combination (fixed seeds)"
        )
        return ShapesData(
            vocab=pixels_vocab(),
            data_source=source,
            sets=eval_sets(n),
            dev=scenes(DEV_SEED, DEV_SCENES // 4 if dry_run else DEV_SCENES),
            extra={"heldout_combinations": [f"{c} {s}" for c, s in HELDOUT]},
        )

    def examples(self) -> list[dict[str, Any]]:
        return [
            {"text": "a small red circle left of a big blue triangle", "note": "a caption it was trained on"},
            {"text": "a big red triangle above a small yellow square", "note": "a red triangle: never seen"},
            {"text": "a small blue circle above a big green square", "note": "seen shapes, one above the other"},
        ]

    def metrics(self, model: CaptionModel, data: ShapesData) -> dict[str, Any]:
        by_set = {name: set_scores(model, data.words, batch) for name, batch in data.sets.items()}
        return {
            "exact_match": by_set["scenes"]["exact_match"],
            "exact_match_heldout_combinations": by_set["combinations"]["exact_match"],
            "by_set": by_set,
            "heldout_combinations": data.extra["heldout_combinations"],
        }

    def key_metric(self, metrics: dict[str, Any]) -> KeyMetric | None:
        if "exact_match" not in metrics:
            return None
        return KeyMetric(
            "exact caption on new scenes (held-out combinations)",
            f"{percent(metrics['exact_match'])} ({percent(metrics['exact_match_heldout_combinations'])})",
        )


TASK = ShapesTask()
