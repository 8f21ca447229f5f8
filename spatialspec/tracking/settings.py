"""MONAI bundle tracking settings that log through :class:`~spatialspec.tracking.BufferedMLFlowHandler`."""

from __future__ import annotations

import copy
from typing import Any

from .buffer import BUFFER_NAME

__all__ = ["mlflow_settings", "HANDLER_TARGET", "BUFFER_FILE_ID"]

HANDLER_TARGET = "spatialspec.tracking.BufferedMLFlowHandler"
#: the config id of the buffer file; the bundles do not define it, so the settings add it (override it with
#: ``--mlflow_buffer_file``)
BUFFER_FILE_ID = "mlflow_buffer_file"


def mlflow_settings(buffer_file: str | None = None, engines: tuple[str, ...] = ("trainer", "validator", "evaluator")
                    ) -> dict[str, Any]:
    """MONAI's ``DEFAULT_MLFLOW_SETTINGS`` with every handler a
    :class:`~spatialspec.tracking.BufferedMLFlowHandler`, for ``ConfigWorkflow(tracking=...)`` or, written as
    JSON (``bundles/tracking_mlflow.json``), for ``python -m monai.bundle run ... --tracking FILE``: the runs of
    Saab et al. 2022 (Sec. 3.3.2, 5) then finish and keep their records when the tracking server is unreachable.

    Args:
        buffer_file: the buffer's path; ``None`` gives ``<output_dir>/mlflow_buffer.jsonl`` (a config expression).
        engines: which of MONAI's handler entries to keep (``trainer``, ``validator``, ``evaluator``).

    Raises:
        ValueError: if ``engines`` names an entry MONAI's settings do not have.
    """
    from monai.bundle.utils import DEFAULT_MLFLOW_SETTINGS  # imported here: this module is importable without MONAI

    settings = copy.deepcopy(DEFAULT_MLFLOW_SETTINGS)
    handlers = settings["handlers_id"]
    unknown = [e for e in engines if e not in handlers]
    if unknown:
        raise ValueError(f"mlflow_settings: engines {unknown} are not among {sorted(handlers)}")
    configs = settings["configs"]
    for name in list(handlers):
        if name not in engines:
            configs.pop(name, None)
            continue
        configs[name]["_target_"] = HANDLER_TARGET
        configs[name]["buffer_file"] = f"@{BUFFER_FILE_ID}"
    configs[BUFFER_FILE_ID] = f"$@output_dir + '/{BUFFER_NAME}'" if buffer_file is None else str(buffer_file)
    return settings
