"""The wire schema: request bodies, response bodies and stream frames, as pydantic models.

Responses that carry a trace are large (a 1000-step LSTM trace holds ~800k numbers), so they are built by
app/wire/ (a module per family) as plain dicts of numpy arrays and serialised by orjson; these models document
them in OpenAPI.
"""

from __future__ import annotations

import base64
import binascii
from typing import Annotated, Any, Literal

from annotated_types import Ge, Le
from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, model_validator
from pydantic.json_schema import SkipJsonSchema

from app.engine.family import KINDS
from app.engine.layers import Cell
from app.engine.speech.trace import BEAM_WIDTH, MAX_BEAM_WIDTH

CHECKPOINT_PATTERN = r"^[0-9]{1,3}$"


def _json_number(value: Any) -> Any:
    """A number must be a JSON number: pydantic's lax mode would read true as 1 and "5" as 5."""
    if isinstance(value, bool | str):
        raise ValueError(f"expected a number, not a {'boolean' if isinstance(value, bool) else 'string'}")
    return value


def _unicode(value: str) -> str:
    """A text with an unpaired surrogate (JSON allows "\ud800") can be neither tokenised nor echoed in UTF-8."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as e:
        raise ValueError(f"not valid unicode: an unpaired surrogate at {e.start}") from None
    return value


Text = Annotated[str, AfterValidator(_unicode)]
Int = Annotated[int, BeforeValidator(_json_number)]
Float = Annotated[float, BeforeValidator(_json_number)]
Precision = Annotated[int, Ge(1), Le(9), BeforeValidator(_json_number)]
Seed = Annotated[int, Ge(0), Le(2**32 - 1), BeforeValidator(_json_number)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ErrorBody(BaseModel):
    error: str = Field(description="a short machine-readable name, e.g. not_found, too_long, busy")
    message: str = Field(description="what went wrong and what to do about it")
    detail: list[dict[str, Any]] | None = None


class ModelSummary(BaseModel):
    id: str
    task: str
    cell: Cell  # torch.nn's three, or a token model's linear recurrence (app/engine/layers.py CELLS)
    # the registry's kinds (app/engine/family.py), not a list of its own: a new family is not an edit here
    kind: str = Field(description="what the model does", json_schema_extra={"enum": list(KINDS)})
    hidden_size: int
    num_layers: int
    vocab_size: int
    description: str
    metrics: dict[str, Any]


class ModelList(BaseModel):
    models: list[ModelSummary]


class CheckpointInfo(BaseModel):
    name: str = Field(description="percent of training, e.g. '0', '5', '20', '100'")
    step: int


class ModelCardOut(ModelSummary):
    embed_size: int
    vocab: list[str] | None = Field(None, description="next-token models: the tokens, in the order of their ids")
    unk: str | None = Field(
        None,
        description="the token text outside the vocabulary is read as (the zoo's: <unk>, id 0); none: such text is "
        "refused (422 naming it and its position)",
    )
    vocab_level: Literal["char", "word", "note", "value"] = Field(
        description="what one step reads: a character, a word, a note (PITCH:DUR) or numbers (series models)"
    )
    bidirectional: bool = Field(False, description="whether its layers read the input both ways (imported models)")
    series: dict[str, Any] | None = Field(
        None, description="series models: the numbers' features, mean, std, units and what one step is"
    )
    labels: list[str] | None = Field(None, description="classifiers: the class labels")
    positive_label: str | None = None
    target: Literal["predicted", "first_token"] | None = Field(
        None,
        description="classifiers: the label a trace is scored against when the request names none: the model's "
        "own answer at the last step, or the class the input's first token names (the memory task)",
    )
    gates: list[str] = Field(description="gate names in torch.nn's order")
    target_vocab: list[str] | None = Field(None, description="translation models: the decoder's tokens")
    attention: bool | None = Field(None, description="translation models: whether the decoder attends")
    max_length: int | None = Field(None, description="translation models: the longest output, in steps")
    equations: str | None = Field(None, description="translation models: how every number is computed")
    examples: list[dict[str, Any]]
    checkpoints: list[CheckpointInfo]
    curve: list[dict[str, float]]
    seed: int
    train_seconds: float
    data_source: str


Values = Annotated[
    list[Any],
    Field(
        min_length=1,
        description="series models: the numbers, one step each: a flat list for one feature, or T lists of F",
        # checked by the engine, which names the step of a bad number (app.engine.series.model.read_values)
        json_schema_extra={"items": {"anyOf": [{"type": "number"}, {"type": "array", "items": {"type": "number"}}]}},
    ),
]


def _one_input(text: str | None, values: list[Any] | None, what: str) -> None:
    if (text is None) == (values is None):
        raise ValueError(f"give {what} or values (series models), one of them")


def _no_nulls(data: Any, *names: str) -> Any:
    """An input is a string or a list, or left out: the schema says so (oneOf, no null), and so does the server."""
    if isinstance(data, dict):
        for name in names:
            if name in data and data[name] is None:
                raise ValueError(f"{name} is null: give it, or leave it out")
    return data


# The schema of a request that takes text (or a prompt) or values: exactly one, neither of them null.
def _one_of(first: str) -> dict[str, Any]:
    return {"oneOf": [{"required": [first]}, {"required": ["values"]}]}


class TraceRequest(Strict):
    model_config = ConfigDict(extra="forbid", json_schema_extra=_one_of("text"))

    text: Text | SkipJsonSchema[None] = Field(
        None, min_length=1, description="the input; each character, word or note is one time step"
    )
    values: Values | SkipJsonSchema[None] = None
    loss: Literal["sum", "last"] | None = Field(
        None, description="sum of every step's loss, or the last step's; default: sum (next-token), last (classify)"
    )
    label: str | None = Field(None, max_length=64, description="classifiers: the label L is measured against")
    top_k: Int = Field(5, ge=1, description="next-token models: predictions listed per step (at most max_top_k)")
    checkpoint: str | None = Field(None, pattern=CHECKPOINT_PATTERN, description="a saved checkpoint's name")
    precision: Precision | None = Field(
        None, description="significant digits of JSON numbers (binary records are never rounded); omitted: full float32"
    )
    target: str | None = Field(
        None,
        min_length=1,
        max_length=1000,
        description="translation models: the output the decoder is scored on (teacher forcing); omitted: the "
        "model's own greedy output",
    )

    @model_validator(mode="before")
    @classmethod
    def _present(cls, data: Any) -> Any:
        return _no_nulls(data, "text", "values")

    @model_validator(mode="after")
    def _one_input(self) -> TraceRequest:
        _one_input(self.text, self.values, "text")
        return self


class TranslateRequest(Strict):
    text: str = Field(min_length=1, description="the source text")
    beam: Annotated[int, Ge(1), Le(8), BeforeValidator(_json_number)] = Field(
        1, description="beam width; 1 is greedy decoding"
    )
    max_length: Annotated[int, Ge(1), Le(400), BeforeValidator(_json_number)] | None = Field(
        None, description="the longest output, in decoder steps; default: the card's max_length"
    )
    top_k: Int = Field(5, ge=1, description="predictions listed per decoder step (at most max_top_k)")
    prefix: str | None = Field(
        None, max_length=400, description="what the decoder is forced to write first ('what if it had written this')"
    )
    checkpoint: str | None = Field(None, pattern=CHECKPOINT_PATTERN, description="a saved checkpoint's name")
    precision: Precision | None = Field(
        None, description="significant digits of JSON numbers (binary records are never rounded); omitted: full float32"
    )


class GenerateRequest(Strict):
    model_config = ConfigDict(extra="forbid", json_schema_extra=_one_of("prompt"))

    prompt: Text | SkipJsonSchema[None] = Field(None, min_length=1, description="what the model reads before it writes")
    values: Values | SkipJsonSchema[None] = Field(None, description="series models: the numbers a forecast starts from")
    length: Int = Field(
        100, ge=1, description="tokens to sample, or values to forecast (at most the server's max_generate)"
    )
    temperature: Float = Field(0.8, ge=0.0, le=10.0, allow_inf_nan=False)
    seed: Seed | None = Field(None, description="the same seed writes the same text")
    top_k: Int = Field(5, ge=1)
    precision: Precision | None = None

    @model_validator(mode="before")
    @classmethod
    def _present(cls, data: Any) -> Any:
        return _no_nulls(data, "prompt", "values")

    @model_validator(mode="after")
    def _one_input(self) -> GenerateRequest:
        _one_input(self.prompt, self.values, "prompt")
        return self


class StreamTraceRequest(TraceRequest):
    mode: Literal["trace"] = "trace"
    encoding: Literal["json", "binary"] = Field("json", description="binary: fixed-size binary records")
    batch: Annotated[int, Ge(1), Le(4096), BeforeValidator(_json_number)] = Field(
        1,
        description="frames per WebSocket message, for long inputs (e.g. 64): binary records end to end, or in "
        "JSON an array of frames; the meta and done frames always travel alone",
    )


class StreamTranslateRequest(TranslateRequest):
    mode: Literal["translate"]
    encoding: Literal["json", "binary"] = Field("json", description="binary: fixed-size binary records")
    states: Literal["hidden", "all"] = Field(
        "hidden",
        description="hidden: each layer's hidden states only (what the translation page shows); all: its "
        "cell states and gates too, as the REST body holds them",
    )
    batch: Annotated[int, Ge(1), Le(4096), BeforeValidator(_json_number)] = Field(1)


class StreamGenerateRequest(GenerateRequest):
    mode: Literal["generate"]
    encoding: Literal["json"] = Field("json", description="generation streams JSON frames, one per sampled token")


def _base64(value: Any) -> bytes:
    """The stream's audio: a WAV file's bytes in standard base64 (a bad character or length is named)."""
    if not isinstance(value, str):
        raise ValueError("expected a string of base64")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError) as e:
        raise ValueError(f"not valid base64: {e}") from None


class TranscribeRequest(Strict):
    """POST /api/models/{id}/transcribe's query (its body is the WAV itself), and the stream's transcribe mode."""

    transcript: Text | None = Field(
        None, min_length=1, max_length=1000, description="the text the loss is measured against; omitted: the "
        "model's own greedy text. A character outside the model's alphabet is refused by name and position"
    )  # fmt: skip
    # a query's numbers are text ("?beam=4"): read as numbers here, where the stream's JSON must send numbers
    beam: Annotated[int, Ge(1), Le(MAX_BEAM_WIDTH)] = Field(BEAM_WIDTH, description="the prefix beam search's width")
    checkpoint: str | None = Field(None, pattern=CHECKPOINT_PATTERN, description="a saved checkpoint's name")
    precision: Annotated[int, Ge(1), Le(9)] | None = Field(
        None, description="significant digits of JSON numbers (binary records are never rounded); omitted: full float32"
    )


class StreamTranscribeRequest(TranscribeRequest):
    mode: Literal["transcribe"]
    beam: Annotated[int, Ge(1), Le(MAX_BEAM_WIDTH), BeforeValidator(_json_number)] = Field(
        BEAM_WIDTH, description="the prefix beam search's width"
    )
    precision: Precision | None = Field(
        None, description="significant digits of JSON numbers (binary records are never rounded); omitted: full float32"
    )
    audio: Annotated[bytes, BeforeValidator(_base64)] = Field(
        description="the WAV file, base64", json_schema_extra={"type": "string", "contentEncoding": "base64"}
    )
    encoding: Literal["json", "binary"] = Field("json", description="binary: fixed-size binary records")
    batch: Annotated[int, Ge(1), Le(4096), BeforeValidator(_json_number)] = Field(1)


class TranscribeResponse(BaseModel):
    text: str = Field(description="the greedy path collapsed (repeats merged, blanks dropped)")
    beams: list[dict[str, Any]] = Field(description="the prefix beam search's texts, best first: {text, log_prob}")
    trace: dict[str, Any] = Field(
        description="per step: every layer entry's states and gates, CTC's log-posteriors, the greedy path and its "
        "collapse, the trellis' occupancy and best alignment, BPTT's gradient norms; the log-mel features per frame "
        "and the audio's timing (app/wire/speech.py)"
    )


class Prediction(BaseModel):
    token: str
    p: float


class LayerBody(BaseModel):
    direction: Literal["forward", "reverse"] = Field(
        "forward", description="the direction this layer read the input in; layers in torch's order (l0, l0_reverse, …)"
    )
    hidden: list[list[float]] = Field(description="T × H")
    cell_state: list[list[float]] | None = Field(description="T × H, LSTM only")
    gates: dict[str, list[list[float]]] = Field(description="gate name → T × H")


class GradNorms(BaseModel):
    hidden: list[list[float]] = Field(description="[layer][T] ‖∂L/∂h_t‖")
    cell_state: list[list[float]] | None = Field(description="[layer][T] ‖∂L/∂c_t‖, LSTM only")
    input: list[float] = Field(description="[T] ‖∂L/∂x_t‖, x_t the input embedding")
    weight_hh: list[list[float]] = Field(description="[layer][T] ‖step t's term of ∂L/∂W_hh‖")


class TraceResponse(BaseModel):
    model: str
    cell: str
    kind: str
    checkpoint: str | None
    tokens: list[str]
    token_ids: list[int]
    unknown: list[int] = Field(description="positions read as the unknown token")
    steps: int
    loss_mode: Literal["sum", "last"]
    total_loss: float
    label: str | None
    label_source: Literal["given", "input", "predicted"] | None = Field(
        description="classifiers: where `label` came from: the request, the input itself (the memory task names "
        "its answer in its first symbol), or the model's own answer at the last step"
    )
    layers: list[LayerBody]
    predictions: list[list[Prediction]] | None = Field(description="next-token models: top-k per step")
    probs: list[float] | None = Field(description="classifiers: class probabilities at the last step")
    step_probs: list[list[float]] | None = Field(description="classifiers: T × labels")
    loss: list[float | None] = Field(description="each step's own loss; null where a step has no target")
    grad_norms: GradNorms


class GenerateResponse(BaseModel):
    text: str = Field(description="the prompt followed by what the model wrote")
    generated: str
    trace: TraceResponse


class TranslationGradNorms(BaseModel):
    hidden: list[list[float]] = Field(description="[layer][steps] ‖∂L/∂h_t‖")
    cell_state: list[list[float]] | None = Field(description="[layer][steps] ‖∂L/∂c_t‖, LSTM only")
    input: list[float] = Field(description="[steps] ‖∂L/∂x_t‖, x_t the step's input embedding")
    weight_hh: list[list[float]]
    via_attention: list[float] | None = Field(
        None, description="encoder: [J] ‖the part of ∂L/∂h_j (top layer) that arrives through attention‖"
    )
    context: list[float] | None = Field(None, description="decoder: [T] ‖∂L/∂c_t‖ of the attention context")


class SideBody(BaseModel):
    tokens: list[str] = Field(description="what each step read (the decoder: <s>, then its own previous output)")
    layers: list[LayerBody]
    predictions: list[list[Prediction]] | None = Field(None, description="decoder: top-k per step")


class BeamBody(BaseModel):
    output: str
    score: float = Field(description="Σ log p of every written token, </s> included; not length-normalised")
    finished: bool


class TranslationTraceResponse(BaseModel):
    model: str
    cell: str
    kind: Literal["translate"]
    checkpoint: str | None
    attention_used: bool
    source_tokens: list[str]
    source_ids: list[int]
    unknown: list[int]
    target_tokens: list[str] = Field(description="what each decoder step should write; </s> last if it ended")
    target_ids: list[int]
    target_source: Literal["given", "greedy"]
    prefix_length: int
    output: str
    finished: bool
    source_steps: int
    target_steps: int
    total_loss: float = Field(description="−log p(target | source)")
    beams: list[BeamBody] | None
    encoder: SideBody
    decoder: SideBody
    attention: list[list[float]] | None = Field(description="[T][J] α_tj; null without attention")
    context: list[list[float]] | None = Field(description="[T][H] c_t")
    loss: list[float] = Field(description="[T] −log p(y_t)")
    grad_norms: dict[str, TranslationGradNorms] = Field(description='{"encoder": …, "decoder": …}')


class TranslateResponse(BaseModel):
    output: str = Field(description="the best candidate")
    beams: list[BeamBody] = Field(description="every final candidate, best first")
    trace: TranslationTraceResponse


class Health(BaseModel):
    status: str
    models: int | None = None
