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
