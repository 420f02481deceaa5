"""The zoo's training tasks: each knows its vocabulary, data, model sizes, budget, examples and metrics."""

from __future__ import annotations

from typing import Any

from app.training.tasks import alphabet, charlm, digits, melody, memory, numbers, sentiment, shapes, speech, sunspots
from app.training.tasks.base import Batch, Budget, KeyMetric, ModelSize, Task, TaskData

TASKS: dict[str, Task[Any]] = {
    t.name: t
    for t in (
        alphabet.TASK,
        memory.TASK,
        charlm.TASK,
        sentiment.TASK,
        numbers.TASK,
        melody.TASK,
        sunspots.TASK,
        shapes.TASK,
        digits.TASK,
        speech.TASK,
    )
}

__all__ = ["TASKS", "Batch", "Budget", "KeyMetric", "ModelSize", "Task", "TaskData"]
