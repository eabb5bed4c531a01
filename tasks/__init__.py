"""Task pipelines: one module per task, registered by name; ``runner`` drives them all."""

from dlsuite.tasks.base import TASKS, Task, register  # noqa: F401

# Importing a task module registers it.
from dlsuite.tasks import image_classification  # noqa: E402,F401
from dlsuite.tasks import sentiment  # noqa: E402,F401
from dlsuite.tasks import speech  # noqa: E402,F401
from dlsuite.tasks import anomaly  # noqa: E402,F401
from dlsuite.tasks import fraud  # noqa: E402,F401


def get(name: str) -> Task:
    return TASKS.get(name)


def names() -> list[str]:
    return TASKS.names()
