"""Extra batch keys of a trainer objective: the ``loss_function`` of a ``SupervisedTrainer`` that is also an ignite
handler reads what the trainer does not pass it (location labels, flags, image labels) from ``engine.state.batch``,
which keeps them out of ``engine.state.output``."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from monai.utils import min_version, optional_import

if TYPE_CHECKING:
    from ignite.engine import Engine
else:
    Engine, _ = optional_import("ignite.engine", "0.4.11", min_version, "Engine")

__all__ = ["batch_keys"]


def batch_keys(owner: object, engine: Engine | None, required: Sequence[str], optional: Sequence[str] = (),
               hint: str = "") -> dict[str, Any]:
    """The values of ``required`` (and of the ``optional`` keys present) in the current batch of ``engine``, the
    trainer ``owner`` is attached to.

    Raises:
        RuntimeError: naming ``owner``'s class when it is not attached (``engine`` is ``None``).
        KeyError: naming the first required key the batch lacks, with ``hint`` (where the key comes from).
    """
    name = type(owner).__name__
    if engine is None:
        raise RuntimeError(f"{name} is not attached: list it in +train#attached (train#handlers)")
    batch = engine.state.batch
    present = batch if isinstance(batch, dict) else {}
    missing = [key for key in required if key not in present]
    if missing:
        raise KeyError(f"{name}: the batch has no {missing[0]!r} key{f' ({hint})' if hint else ''}")
    return {key: present[key] for key in (*required, *optional) if key in present}
