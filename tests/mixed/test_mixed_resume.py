"""Mixed supervision (issue 15 section 3) resumes after SIGKILL like the other bundles: killed in the middle of an
epoch and run again with the same command, its per-epoch validation metrics and best checkpoint equal an
uninterrupted run's."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(TESTS / "handlers"), str(TESTS / "bundles")]
from test_resume import assert_method_resumes_as_if_uninterrupted  # noqa: E402


@pytest.mark.slow
def test_mixed_resumes_after_sigkill_as_if_uninterrupted(tmp_path):
    assert_method_resumes_as_if_uninterrupted(tmp_path, "mixed", "--location_labels", "6")
