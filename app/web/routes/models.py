"""GET /api/models and /api/models/{id}: the zoo and its cards."""

from __future__ import annotations

from fastapi import APIRouter

from app.engine.token.model import LoadedModel
from app.web.deps import ZooDep
from app.web.schemas.models import CheckpointInfo, ErrorBody, ModelCardOut, ModelList, ModelSummary

router = APIRouter(prefix="/api", tags=["models"])


def summary(m: LoadedModel) -> ModelSummary:
    c = m.card
    return ModelSummary(
        id=c.id,
        task=c.task,
        cell=c.cell,
        kind=c.kind,
        hidden_size=c.hidden_size,
        num_layers=c.num_layers,
        vocab_size=len(m.vocab),
        description=c.description,
        metrics=c.metrics,
    )


@router.get("/models", response_model=ModelList)
def list_models(zoo: ZooDep) -> ModelList:
    """List the models of the zoo."""
    return ModelList(models=[summary(m) for m in zoo])


@router.get("/models/{model_id}", response_model=ModelCardOut, responses={404: {"model": ErrorBody}})
def get_model(model_id: str, zoo: ZooDep) -> ModelCardOut:
    """A model's card: sizes, vocabulary or labels, gates, examples, checkpoints, training curve, metrics."""
    m = zoo.get(model_id)
    c = m.card
    return ModelCardOut(
        **summary(m).model_dump(),
        embed_size=c.embed_size,
        vocab=list(m.vocab.tokens) if c.kind != "classify" else None,
        vocab_level=m.vocab.level,
        unk=m.vocab.unk,
        bidirectional=c.bidirectional,
        series=c.series,
        labels=c.labels,
        positive_label=c.positive_label,
        target=c.target if c.kind == "classify" else None,
        gates=list(c.gate_names),
        target_vocab=list(m.target_vocab.tokens) if m.target_vocab is not None else None,
        attention=c.attention if c.kind == "translate" else None,
        max_length=c.max_length if c.kind == "translate" else None,
        equations=c.equations or None,
        examples=c.examples,
        checkpoints=[CheckpointInfo(name=k.name, step=k.step) for k in c.checkpoints],
        curve=c.curve,
        seed=c.seed,
        train_seconds=c.train_seconds,
        data_source=c.data_source,
    )
