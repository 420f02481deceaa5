"""How long does a speech model's trace take? `python -m bench.speech_trace [--threads 1]`

A 3-second clip (300 log-mel frames, 100 steps of 3 stacked frames) through a 2-layer bidirectional GRU of 128
(the feasibility bench's shape, random weights), interleaved, median of 5. The baseline, measured in the same run,
is a bare torch forward and backward of the same model and loss (torch.nn.GRU → head → log-softmax → CTC loss →
.backward()); the trace computes everything the family shows: every layer's states and gates in both directions,
the posteriors, greedy and beam decoding, the CTC trellis and alignment, ∂L/∂logits and BPTT's norms. Its parts are
timed on their own beside it, and the front end (a 3-second WAV's bytes → frames) for scale. With random weights
the posteriors are nearly flat, the beam search's hardest case (every kept prefix has many likely extensions).

Measured 2026-12-07, 1 thread, load about 3 on 2 cores (ms, median of 5; × the baseline of the same run):
                                          gru          lstm
    baseline: torch forward + CTC + back  56.7  1.00   12.7  1.00   (torch fuses the LSTM on the CPU, not the GRU)
    trace (everything, beam 8)            30.9  0.55   30.2  2.38
      forward: states and gates           10.9         7.8
      beam search, width 8                11.2         11.3         (Python floats; numpy scalars took 69 ms)
      trellis, alignment, ∂L/∂logits       3.1         3.0
      BPTT: stack_backward                 5.0         6.4
    front end, 16 kHz / 44.1 kHz WAV      1.0 / 5.1    0.9 / 4.1
"""

from __future__ import annotations

import argparse
import io
import wave

import numpy as np
import torch
from torch import Tensor
from torch.nn import functional as F

from app.engine import kernels
from app.engine.layers import stack_backward, stack_forward
from app.engine.speech.audio import N_MELS, wav_features
from app.engine.speech.model import SpeechConfig, SpeechModel
from app.engine.speech.trace import beam_search, occupancy, trace_frames, trellis
from bench.common import interleaved, table

ALPHABET = " -adefghilnorstuvwxyz"
TRANSCRIPT = [1 + ALPHABET.index(c) for c in "three hundred and forty-two"]


def wav_bytes(seconds: float, rate: int) -> bytes:
    rng = np.random.default_rng(0)
    t = np.arange(int(seconds * rate)) / rate
    x = 0.3 * np.sin(2 * np.pi * 220 * t) + 0.05 * rng.normal(size=len(t))
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes((x * 32767).astype("<i2").tobytes())
    return buf.getvalue()


def baseline(model: SpeechModel, x: Tensor, labels: Tensor) -> None:
    model.zero_grad(set_to_none=True)
    log_probs = torch.log_softmax(model(x[None])[0], dim=-1)  # (T', C)
    T = log_probs.shape[0]
    loss = F.ctc_loss(log_probs[:, None], labels[None], torch.tensor([T]), torch.tensor([len(labels)]), reduction="sum")
    loss.backward()  # type: ignore[no-untyped-call]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cell", choices=("rnn", "lstm", "gru"), default="gru")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--frames", type=int, default=300)
    parser.add_argument("--hidden", type=int, default=128)
    parser.add_argument("--beam", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    kernels.warm_up()
    cfg = SpeechConfig(args.cell, N_MELS, 3, args.hidden, 1 + len(ALPHABET), num_layers=2, bidirectional=True)
    model = SpeechModel(cfg).eval()
    frames = torch.randn(args.frames, N_MELS) * 3.0 - 5.0
    x = model.steps(frames)  # (T', 120)
    labels = torch.tensor(TRANSCRIPT)
    with torch.no_grad():
        forwards, top = stack_forward(model, x, cfg.num_layers, cfg.directions)
        log_probs = torch.log_softmax((top @ model.head.weight.T + model.head.bias).double(), dim=-1).numpy()
    tr = trellis(log_probs, TRANSCRIPT)
    ext = (np.exp(log_probs) - occupancy(tr, cfg.classes)) @ model.head.weight.detach().double().numpy()
    wav16, wav44 = wav_bytes(args.frames / 100, 16_000), wav_bytes(args.frames / 100, 44_100)

    def forward() -> None:
        with torch.no_grad():
            stack_forward(model, x, cfg.num_layers, cfg.directions)

    def backward() -> None:
        with torch.no_grad():
            stack_backward(model, forwards, ext, cfg.num_layers, cfg.directions)

    rows = [
        ("baseline: torch forward + CTC + backward", lambda: baseline(model, x, labels)),
        (f"trace (everything, beam {args.beam})", lambda: trace_frames(model, frames, TRANSCRIPT, ALPHABET, args.beam)),
        ("  forward: states and gates", forward),
        (f"  beam search, width {args.beam}", lambda: beam_search(log_probs, args.beam)),
        ("  trellis, alignment, ∂L/∂logits", lambda: occupancy(trellis(log_probs, TRANSCRIPT), cfg.classes)),
        ("  BPTT: stack_backward", backward),
        ("front end, 16 kHz WAV", lambda: wav_features(wav16)),
        ("front end, 44.1 kHz WAV", lambda: wav_features(wav44)),
    ]
    times = interleaved([fn for _, fn in rows], args.repeats)
    base = times[0]
    print(f"{args.frames} frames = {x.shape[0]} steps; 2 layers × 2 directions of {args.hidden} {args.cell}; "
          f"{args.threads} thread(s); median of {args.repeats}")  # fmt: skip
    print(
        table(
            ["what", "ms", "× baseline"],
            [(n, f"{1000 * t:.1f}", f"{t / base:.2f}") for (n, _), t in zip(rows, times, strict=True)],
        )
    )


if __name__ == "__main__":
    main()
