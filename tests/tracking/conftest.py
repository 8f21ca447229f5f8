"""Every tracking test starts with no offline URI, warning or remembered run in the process, and without a
caller's MLFLOW_TRACKING_URI."""

from __future__ import annotations

import pytest

from spatialspec.tracking import reset_tracking_state


@pytest.fixture(autouse=True)
def _fresh_tracking_state(monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    reset_tracking_state()
    yield
    reset_tracking_state()
