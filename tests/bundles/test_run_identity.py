"""``python -m monai.bundle run`` twice in one output folder with other settings: the second run is refused before it
trains, in one line with exit status 2, and the first run's files are left as they were (issue 13)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from spatialspec import registry

sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_bundles import TINY, _train_args, run_bundle  # noqa: E402


def _files(folder):
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.mark.slow
@pytest.mark.parametrize("name", ["seg", "seg-ssl"])
def test_other_settings_in_the_same_output_dir_are_refused(name, tmp_path):
    out = tmp_path / "out"
    extra = ["--location_labels", "10"] if name == "seg-ssl" else []
    first = run_bundle(_train_args(name, out, *extra, synthetic=TINY), tmp_path / "first.log")
    assert first.returncode == 0, first.describe()
    marker = json.loads((out / "models" / "fingerprint.json").read_text())
    assert marker["fields"]["run_params"]["bundle"] == registry.method(name).bundle
    before = _files(out)

    second = run_bundle(_train_args(name, out, "--level", "bbox", *extra, synthetic=TINY), tmp_path / "second.log")
    assert second.returncode == 2, second.describe()
    errors = [line for line in second.output.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and "Traceback" not in second.output, second.describe()
    assert "level: 'seg' -> 'bbox'" in errors[0] and "--resume False" in errors[0]
    assert _files(out) == before

    # the same settings again: the finished run is resumed at its last epoch (nothing trains), model.pt unchanged
    again = run_bundle(_train_args(name, out, *extra, synthetic=TINY), tmp_path / "again.log")
    assert again.returncode == 0, again.describe()
    assert "resumed from" in again.output and _files(out)["models/model.pt"] == before["models/model.pt"]
