"""The engine's domain errors. The web layer maps each to one HTTP or WebSocket code."""


class EngineError(ValueError):
    """Base class: a request the engine cannot serve, with a message a person can act on."""


class EmptyInput(EngineError):
    pass


class InputTooLong(EngineError):
    def __init__(self, steps: int, limit: int) -> None:
        super().__init__(f"input has {steps} steps; the limit is {limit} steps (max_steps). Shorten the text.")
        self.steps = steps
        self.limit = limit


class UnknownLabel(EngineError):
    pass


class WrongModelKind(EngineError):
    """A request that needs the other kind of model (generate on a classifier, a label on a next-token model)."""


class UnknownCheckpoint(EngineError):
    pass


class ModelFileError(EngineError):
    """A weights file or card that does not match what it claims to be."""


class OverLimit(EngineError):
    """A text or setting over one of its limits, named (a translation's source, prefix, target or beam)."""

    def __init__(self, what: str, value: int, limit: int, name: str) -> None:
        unit = "" if what == "beam" else " steps"
        super().__init__(f"{what} has {value}{unit}; the limit is {limit}{unit} ({name}). Shorten it.")
        self.what = what
        self.value = value
        self.limit = limit
        self.name = name


class UnknownTokens(EngineError):
    """Pieces of a text that the model's vocabulary lacks, by position (0-based, in the vocabulary's pieces)."""

    def __init__(self, what: str, tokens: list[str], positions: list[int]) -> None:
        shown = ", ".join(f"{tokens[i]!r} at {i}" for i in positions[:5])
        more = f" and {len(positions) - 5} more" if len(positions) > 5 else ""
        super().__init__(f"the {what} has pieces the model does not know: {shown}{more}")
        self.what = what
        self.tokens = tokens
        self.positions = positions


class BadNote(EngineError):
    """A note of a melody's text that is not `PITCH:DUR` (app/engine/token/notes.py), by position (0-based);
    the message counts notes as a musician does, from 1 (the third note is "position 3")."""

    def __init__(self, token: str, position: int, problem: str) -> None:
        super().__init__(f"note {token!r} at position {position + 1}: {problem}")
        self.token = token
        self.position = position
        self.problem = problem


class BadValues(EngineError):
    """Numbers a series model cannot read (not a number, NaN, infinite, the wrong width), by step (0-based)."""

    def __init__(self, problem: str, step: int | None = None) -> None:
        super().__init__(problem if step is None else f"step {step}: {problem}")
        self.problem = problem
        self.step = step
