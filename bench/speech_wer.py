"""The committed speech models' word and character error rates (issue 25): a table per model × held-out set
(voices never trained on; numbers never trained on) × (clean; white noise at 10 dB SNR), greedy decoding, beside
the training time their cards record. The held-out clips are synthesised by espeak-ng as training made them
(app/training/tasks/speech.py's sets, the same in every run), or read from the data cache.

    PYTHONPATH=. UNROLLED_DATA_CACHE=data-cache .venv/bin/python -m bench.speech_wer [--models models]

Measured 2026-12-07 (the committed models; train CPU s: the trainer's process time with the data read from the
cache and the metrics, one thread, on a machine loaded about seven times over, which also stretched the wall time):
    model         voices clean   voices 10 dB   phrases clean   phrases 10 dB   train CPU s   wall s
    speech-rnn     14.1 (3.0)     16.8 (4.2)     16.6 (3.3)      20.6 (5.1)         131        1262
    speech-lstm     7.4 (1.5)      8.8 (1.6)      9.5 (1.7)      11.8 (2.6)         274        1972
    speech-gru      6.4 (1.1)      6.3 (1.4)      7.5 (1.6)       9.0 (2.0)         258        1940

The figures must match the cards' metrics (the same clips, the same noise seed): a mismatch means the models,
the front end or the data moved since training.

`--lexicon` adds, after each figure, the word error rate once every heard word that is no number word is
replaced by the nearest one (per hyphenated part, by character edit distance): what a decoder that knows the
closed vocabulary would give, which the engine does not do (its text is the greedy collapse). Most greedy errors
are one letter ("tine" for "nine"): measured 2026-12-07 on the committed models, voices clean / 10 dB, phrases
clean / 10 dB: speech-rnn 5.2 / 6.8, 6.9 / 9.2; speech-lstm 2.0 / 2.9, 3.3 / 4.8; speech-gru 3.2 / 3.6, 3.2 / 3.7.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from app.engine.family import load_model
from app.engine.speech.model import SpeechModel
from app.training.loop import DEFAULT_CACHE
from app.training.tasks import numbers
from app.training.tasks import speech_data as sd
from app.training.tasks.speech import N_EVAL, NOISY_SNR, char_error_rate, transcribe

CELLS = ("rnn", "lstm", "gru")


def number_words() -> list[str]:
    """Every word (hyphenated parts apart) num2words writes for 0-999,999: the decoder's closed vocabulary."""
    words = numbers.translator()
    said = [*range(1000), 1000, 100_000]  # the rest repeats these words with "thousand"
    return sorted({p for n in said for w in sd.transcript(words(n, "en")).split() for p in w.split("-")})


def snapped(text: str, lexicon: list[str]) -> str:
    """Each hyphenated part of each word replaced by the lexicon's nearest word (character edit distance)."""

    def nearest(part: str) -> str:
        return part if part in lexicon else min(lexicon, key=lambda w: sd.word_errors(" ".join(w), " ".join(part)))

    return " ".join("-".join(nearest(p) for p in w.split("-") if p) for w in text.split())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", type=Path, default=Path("models"))
    parser.add_argument("--cache", type=Path, default=DEFAULT_CACHE)
    parser.add_argument("--lexicon", action="store_true", help="also the WER with words snapped to number words")
    args = parser.parse_args()
    lexicon = number_words()
    torch.set_num_threads(1)
    sets = sd.speech_sets(seed=0, n_train=0, n_eval=N_EVAL)
    held = {
        "voices": (sd.synthesise(sets.voices, args.cache), [u.text for u in sets.voices]),
        "phrases": (sd.synthesise(sets.phrases, args.cache), [u.text for u in sets.phrases]),
    }
    print(f"{N_EVAL} clips per held-out set; WER (CER) in %, greedy decoding")
    noises = (("clean", None), (f"{NOISY_SNR:g} dB", NOISY_SNR))
    head = "".join(f"{f'{h} {n}':>22s}" for h in held for n, _ in noises)
    print(f"{'model':12s}{head}{'train CPU s':>13s}{'wall s':>8s}{'eval s':>8s}")
    for cell in CELLS:
        mid = f"speech-{cell}"
        if not (args.models / f"{mid}.json").exists():
            print(f"{mid:12s} not trained")
            continue
        loaded = load_model(args.models, mid)
        model = loaded.model
        assert isinstance(model, SpeechModel)
        model.eval()
        t0 = time.process_time()
        row = ""
        for clips, texts in held.values():
            for _, snr in noises:
                said = transcribe(model, clips, snr)
                wer, cer = sd.word_error_rate(texts, said), char_error_rate(texts, said)
                snap = f" {100 * sd.word_error_rate(texts, [snapped(h, lexicon) for h in said]):.1f}" * args.lexicon
                row += f"{f'{100 * wer:.1f} ({100 * cer:.1f}){snap}':>22s}"
        card = loaded.card
        cpu = card.metrics["training"]["cpu_seconds"]
        print(f"{mid:12s}{row}{cpu:13.0f}{card.train_seconds:8.0f}{time.process_time() - t0:8.1f}")


if __name__ == "__main__":
    main()
