"""spatialspec under the MONAI Label environment's versions (numpy 1.26, pydicom 2.4, jsonschema 3.2): the
library's fast tests that touch those packages pass in ``.venv-label`` too (issue 8)."""

from __future__ import annotations

import subprocess

import pytest

from tests.label.helpers import LABEL_VENV, REPO_ROOT

PYTHON = LABEL_VENV / "bin" / "python"
pytestmark = [pytest.mark.label, pytest.mark.slow,
              pytest.mark.skipif(not PYTHON.exists(), reason=f"{PYTHON} missing: run scripts/install.sh --label")]
# DICOM/PNG/NIfTI reading, RLE, transforms, metrics, costs and the label logic itself
SUBSET = ["tests/data", "tests/transforms", "tests/metrics", "tests/cost", "tests/label",
          "tests/cli/test_data_real_cli.py"]


def test_versions_of_the_label_environment():
    code = ("import numpy, pydicom, monailabel, importlib.util as u; "
            "print(numpy.__version__, pydicom.__version__, monailabel.__version__, u.find_spec('torchvision'))")
    out = subprocess.run([str(PYTHON), "-c", code], capture_output=True, text=True, timeout=300, check=True).stdout
    numpy_version, pydicom_version, monailabel_version, torchvision = out.split()
    assert numpy_version.startswith("1.26.") and pydicom_version.startswith("2.4.")
    assert monailabel_version.startswith("0.8.") and torchvision == "None"


def test_fast_suite_subset_passes_with_numpy_1_and_pydicom_2():
    result = subprocess.run([str(PYTHON), "-m", "pytest", "-q", "-p", "no:cacheprovider", "-m", "not slow",
                             "-x", *SUBSET], check=False, cwd=REPO_ROOT, capture_output=True, text=True,
                            timeout=1500)
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
    assert " passed" in result.stdout.splitlines()[-1]
