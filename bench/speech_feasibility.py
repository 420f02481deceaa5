"""Can a small recurrent network with CTC read spoken numbers in the training budget? (issue 25, feasibility)

Trains a bidirectional LSTM or GRU with CTC over speech_data's characters on its espeak-ng clips, for a fixed
wall-clock budget, and prints the word error rate on the held-out voices and the held-out numbers, clean and
with white noise at 10 dB SNR (greedy decoding). Not the family's model: the measurement its design rests on.

    PYTHONPATH=. .venv/bin/python -m bench.speech_feasibility --cell gru --seconds 170 --threads 1

Measured 2026-12-07 (3,000 training clips, 106 min of audio; 200 clips per held-out set; 2 layers × 2 directions
of 128, 3 frames stacked; greedy; WER in %, voices clean / 10 dB, numbers clean / 10 dB):
    gru   1 thread   170 CPU s  375 steps   6.4 / 10.0   5.8 / 11.7
    gru   2 threads  180 CPU s  312 steps   8.5 / 12.3   7.9 / 15.2
    lstm  1 thread   170 CPU s  318 steps  14.5 / 18.9  12.5 / 18.4
    lstm  2 threads  180 CPU s  292 steps  15.0 / 19.4  13.6 / 20.9
The loss was still falling at the end of every run: the budget, not the data, is what holds them back.

The budget is CPU seconds of this process. On a shared, loaded machine use one thread (or
OMP_WAIT_POLICY=PASSIVE): with two, OpenMP's waiting thread spins while the other is descheduled, and a packed
bidirectional step measured 6 CPU s instead of 0.3–0.6.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from numpy.typing import NDArray
from torch import Tensor, nn
from torch.nn import functional as F
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from app.engine.speech.audio import N_MELS
from app.training.tasks import speech_data as sd

NOISY_SNR = 10.0


@dataclass
class Config:
    cell: str = "gru"
    hidden: int = 128
    layers: int = 2
    stack: int = 3  # frames stacked into one step: 10 ms → 30 ms, a third of the steps


class Reader(nn.Module):
    """log-mel frames → per-utterance mean removed → `stack` frames a step → a bidirectional RNN → characters."""

    def __init__(self, config: Config) -> None:
        super().__init__()
        self.config = config
        rnn = nn.LSTM if config.cell == "lstm" else nn.GRU
        self.rnn = rnn(N_MELS * config.stack, config.hidden, config.layers, batch_first=True, bidirectional=True)
        self.head = nn.Linear(2 * config.hidden, len(sd.ALPHABET) + 1)
        if config.cell == "lstm":  # forget-gate bias 1 (the sum bias_ih + bias_hh), as the other tasks' LSTMs
            h = config.hidden
            with torch.no_grad():
                for name, bias in self.rnn.named_parameters():
                    if name.startswith("bias_"):
                        bias[h : 2 * h].fill_(1.0 if name.startswith("bias_ih") else 0.0)

    def forward(self, frames: Tensor, lengths: Tensor) -> Tensor:
        packed = pack_padded_sequence(frames, lengths, batch_first=True, enforce_sorted=False)
        out, _ = self.rnn(packed)
        out, _ = pad_packed_sequence(out, batch_first=True)  # (B, T', 2H)
        return F.log_softmax(self.head(out), dim=-1)  # (B, T', C)


def prepare(frames: Tensor, stack: int) -> Tensor:
    """(T, 40) → (T // stack, 40·stack): the utterance's mean per band removed (a level change is a constant
    in the log), then `stack` frames side by side."""
    frames = frames - frames.mean(dim=0, keepdim=True)
    T = frames.shape[0] // stack * stack
    return frames[:T].reshape(T // stack, stack * N_MELS) / 4.0  # (T', 40·stack); /4: about unit scale


def batch(features: list[Tensor], stack: int) -> tuple[Tensor, Tensor]:
    steps = [prepare(f, stack) for f in features]
    lengths = torch.tensor([len(s) for s in steps])
    return nn.utils.rnn.pad_sequence(steps, batch_first=True), lengths


def greedy(log_probs: Tensor, lengths: Tensor) -> list[str]:
    """Best class per step, repeats merged, blanks dropped (the CTC collapse)."""
    out = []
    for row, n in zip(log_probs.argmax(-1).tolist(), lengths.tolist(), strict=True):
        ids = [c for i, c in enumerate(row[:n]) if c != 0 and (i == 0 or c != row[i - 1])]
        out.append(sd.decode(ids))
    return out


@torch.no_grad()
def wer(model: Reader, clips: list[NDArray[np.int16]], texts: list[str], snr: float | None) -> float:
    model.eval()
    rng = np.random.default_rng(sd.EVAL_SEED)
    hyps: list[str] = []
    for i in range(0, len(clips), 64):
        frames, lengths = batch([sd.hear(c, rng, 0.0, snr) for c in clips[i : i + 64]], model.config.stack)
        hyps += greedy(model(frames, lengths), lengths)
    model.train()
    return sd.word_error_rate(texts, hyps)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cell", choices=("gru", "lstm"), default="gru")
    parser.add_argument("--seconds", type=float, default=180.0, help="the training budget in CPU seconds")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--train", type=int, default=3000)
    parser.add_argument("--eval", type=int, default=200)
    parser.add_argument("--hidden", type=int, default=128)
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--stack", type=int, default=3)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--cache", type=Path, default=Path("data-cache"))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)

    t0 = time.perf_counter()
    sets = sd.speech_sets(seed=0, n_train=args.train, n_eval=args.eval)
    train = sd.synthesise(sets.train, args.cache)
    voices = sd.synthesise(sets.voices, args.cache)
    phrases = sd.synthesise(sets.phrases, args.cache)
    print(
        f"data: {len(train)} training clips, {sum(map(len, train)) / 16000 / 60:.1f} min, "
        f"{time.perf_counter() - t0:.0f} s to synthesise or read"
    )
    targets = [torch.tensor(sd.encode(u.text)) for u in sets.train]

    model = Reader(Config(args.cell, args.hidden, args.layers, args.stack))
    opt = torch.optim.Adam(model.parameters(), lr=args.lr)
    rng = np.random.default_rng(0)
    # The budget is the process's CPU time, not the wall clock: on a shared machine the wall clock would give
    # fewer steps the busier the others are. One thread: CPU seconds are wall seconds on an idle core.
    start, wall, step = time.process_time(), time.perf_counter(), 0
    while (elapsed := time.process_time() - start) < args.seconds:
        rows = rng.integers(len(train), size=args.batch)
        frames, lengths = batch([sd.augmented(train[i], rng) for i in rows], args.stack)
        ys = [targets[i] for i in rows]
        log_probs = model(frames, lengths)  # (B, T', C)
        loss = F.ctc_loss(
            log_probs.transpose(0, 1), torch.cat(ys), lengths, torch.tensor([len(y) for y in ys]), zero_infinity=True
        )
        opt.zero_grad()
        loss.backward()  # type: ignore[no-untyped-call]
        nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        for group in opt.param_groups:  # cosine to a tenth over the budget
            group["lr"] = args.lr * (0.1 + 0.9 * 0.5 * (1 + np.cos(np.pi * min(1.0, elapsed / args.seconds))))
        opt.step()
        step += 1
        if step % 100 == 0:
            print(f"step {step:5d}  {elapsed:5.0f} s  ctc {loss.item():.3f}", flush=True)
    trained, wall = time.process_time() - start, time.perf_counter() - wall
    texts_v, texts_p = [u.text for u in sets.voices], [u.text for u in sets.phrases]
    results = [
        ("held-out voices, clean", wer(model, voices, texts_v, None)),
        (f"held-out voices, {NOISY_SNR:g} dB SNR", wer(model, voices, texts_v, NOISY_SNR)),
        ("held-out numbers, clean", wer(model, phrases, texts_p, None)),
        (f"held-out numbers, {NOISY_SNR:g} dB SNR", wer(model, phrases, texts_p, NOISY_SNR)),
    ]
    params = sum(p.numel() for p in model.parameters())
    print(
        f"\n{args.cell}, 2×{args.layers} layers of {args.hidden}, stack {args.stack}, {params} parameters, "
        f"{step} steps of {args.batch} in {trained:.0f} CPU s ({wall:.0f} s wall) on {args.threads} thread(s)"
    )
    print(f"{'set':36s} WER")
    for name, value in results:
        print(f"{name:36s} {100 * value:5.1f} %")


if __name__ == "__main__":
    main()
