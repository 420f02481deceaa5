"""GET /api/models and /api/models/{id}: the zoo and its cards."""

from __future__ import annotations

from fastapi import APIRouter

from app.engine.card import LoadedModel
from app.web.deps import ZooDep
from app.web.families import web_family
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
        **web_family(m).card_fields(m),  # embed_size, vocab and what the family adds (labels, series, attention, …)
        vocab_level=m.vocab.level,
        unk=m.vocab.unk,
        bidirectional=c.bidirectional,
        gates=list(c.gate_names),
        examples=c.examples,
        checkpoints=[CheckpointInfo(name=k.name, step=k.step) for k in c.checkpoints],
        curve=c.curve,
        seed=c.seed,
        train_seconds=c.train_seconds,
        data_source=c.data_source,
    )
