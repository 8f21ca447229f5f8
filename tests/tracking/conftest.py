"""Every tracking test starts with no offline URI, warning or remembered run in the process, without a caller's
MLFLOW_TRACKING_URI, and with the session's own cache folder."""

from __future__ import annotations

import pytest

from spatialspec.tracking import reset_tracking_state


@pytest.fixture(autouse=True)
def _fresh_tracking_state(monkeypatch, tmp_path_factory):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    # the empty-store template of spatialspec.tracking.store: in the session's temporary folder, not the user's cache
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path_factory.getbasetemp() / "cache"))
    reset_tracking_state()
    yield
    reset_tracking_state()
