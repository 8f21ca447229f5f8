"""Attach objects to a trainer from a bundle's handler list: the generic wiring of the two-stage methods, whose
second-stage data set and objective read the first stage's output when the second trainer starts."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from monai.utils import min_version, optional_import

if TYPE_CHECKING:
    from ignite.engine import Engine
else:
    Engine, _ = optional_import("ignite.engine", "0.4.11", min_version, "Engine")

__all__ = ["AttachToTrainer"]


class AttachToTrainer:
    """Attach objects that are defined elsewhere in a config but must also listen to the trainer: the second stage's
    data set and loss, which read the first stage's output when the second stage starts.

    MONAI's property checks expect every ``train#handlers`` entry to be a ``_target_`` component, so these objects
    are listed here rather than referenced directly in that list.

    Args:
        handlers: objects with an ``attach(engine)`` method.

    Raises:
        TypeError: naming the classes of the objects that have no ``attach`` method.
    """

    def __init__(self, handlers: list[Any]) -> None:
        missing = [type(h).__name__ for h in handlers if not callable(getattr(h, "attach", None))]
        if missing:
            raise TypeError(f"AttachToTrainer: these objects have no attach(engine) method: {missing}")
        self.handlers = list(handlers)

    def attach(self, engine: Engine) -> None:
        """Attach every object to ``engine``."""
        for handler in self.handlers:
            handler.attach(engine)
