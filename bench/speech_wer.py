"""The committed speech models' word error rates (issue 25): per model, on each held-out set (voices never trained
on; numbers never trained on), clean and with white noise at 10 dB SNR, the greedy text's and the served
transcript's (the lexicon-constrained beam search's, app/engine/speech/lexicon.py, at the engine's default width),
beside the training CPU time their cards record. The held-out clips are synthesised by espeak-ng as training made
them (app/training/tasks/speech.py's sets, the same in every run), or read from the data cache.

    PYTHONPATH=. UNROLLED_DATA_CACHE=data-cache .venv/bin/python -m bench.speech_wer [--models models] [--cells …]

The greedy figures must match the cards' metrics "wer", the lexicon ones "wer_lexicon" (the same clips, the same
noise seed): a mismatch means the models, the front end or the data moved since training. A model whose card has
no lexicon (trained before it) is decoded with the number lexicon the trainer writes now. bench/speech_wer.txt
holds the last run's table.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from app.engine.family import load_model
from app.engine.speech.card import speech_card
from app.engine.speech.model import SpeechModel
from app.training.loop import DEFAULT_CACHE
from app.training.tasks import speech_data as sd
from app.training.tasks.speech import LEXICON_WIDTH, N_EVAL, NOISY_SNR, greedy_text, lexicon_text, posteriors

CELLS = ("rnn", "lstm", "gru")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", type=Path, default=Path("models"))
    parser.add_argument("--cache", type=Path, default=DEFAULT_CACHE)
    parser.add_argument("--cells", nargs="+", choices=CELLS, default=list(CELLS), help="the models to measure")
    args = parser.parse_args()
    torch.set_num_threads(1)
    sets = sd.speech_sets(seed=0, n_train=0, n_eval=N_EVAL)
    held = {
        "voices": (sd.synthesise(sets.voices, args.cache), [u.text for u in sets.voices]),
        "phrases": (sd.synthesise(sets.phrases, args.cache), [u.text for u in sets.phrases]),
    }
    noises = (("clean", None), (f"{NOISY_SNR:g} dB", NOISY_SNR))
    print(
        f"{N_EVAL} clips per held-out set; word error rate in %: greedy / lexicon beam search (width {LEXICON_WIDTH})"
    )
    head = "".join(f" {f'{h} {n}':>16s} |" for h in held for n, _ in noises)
    print(f"| model       |{head} train CPU s | hidden | eval CPU s |")
    print(f"|-------------|{'------------------|' * 4}-------------|--------|------------|")
    for cell in args.cells:
        mid = f"speech-{cell}"
        if not (args.models / f"{mid}.json").exists():
            print(f"| {mid:11s} | not trained")
            continue
        loaded = load_model(args.models, mid)
        model = loaded.model
        assert isinstance(model, SpeechModel)
        model.eval()
        lexicon = speech_card(loaded.card).lexicon or sd.number_lexicon()
        t0 = time.process_time()
        row = ""
        for clips, texts in held.values():
            for _, snr in noises:
                heard = posteriors(model, clips, snr)
                greedy = sd.word_error_rate(texts, [greedy_text(lp) for lp in heard])
                served = sd.word_error_rate(texts, [lexicon_text(lp, lexicon) for lp in heard])
                row += f" {f'{100 * greedy:.1f} / {100 * served:.1f}':>16s} |"
        cpu = loaded.card.metrics["training"]["cpu_seconds"]
        print(f"| {mid:11s} |{row} {cpu:11.0f} | {loaded.card.hidden_size:6d} | {time.process_time() - t0:10.1f} |")


if __name__ == "__main__":
    main()
