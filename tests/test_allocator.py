"""The C allocator's settings for training on CPU (spatialspec.allocator, issue 17): glibc keeps the memory a training
step frees instead of mapping it again page by page. The allocation check runs in fresh interpreters (the settings hold
for a whole process), with and without the tuning."""

from __future__ import annotations

import json
import platform
import subprocess
import sys
from pathlib import Path

import pytest

from spatialspec import allocator

sys.path.insert(0, str(Path(__file__).resolve().parent / "bundles"))
from test_bundles import TINY, _workflow  # noqa: E402

GLIBC = platform.libc_ver()[0] == "glibc"

# what the thresholds decide, read from glibc's own accounting (mallinfo2) in an interpreter without torch: whether a
# 20 MiB block gets a mapping of its own (given back to the kernel when freed, mapped and faulted in again page by page
# next time) or comes from the heap, and whether the heap keeps it once freed. Page-fault counts would show the same
# but depend on the kernel as well (here they varied from run to run, tuned or not): one `monai.bundle run` of the
# seg bundle made 310,000 to 1,898,000 faults by default against about 240,000 tuned (docs/benchmarks.md).
ONE_BLOCK = """
import ctypes, json, sys
if sys.argv[1] == "tuned":
    from spatialspec.allocator import tune_cpu_allocator
    assert tune_cpu_allocator().applied
class Mallinfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks",
                                                     "fsmblks", "uordblks", "fordblks", "keepcost")]
libc = ctypes.CDLL("libc.so.6")
libc.mallinfo2.restype = Mallinfo2
libc.malloc.restype = ctypes.c_void_p
libc.free.argtypes = [ctypes.c_void_p]
before = libc.mallinfo2()
block = libc.malloc(20 * 2**20)
during = libc.mallinfo2()
libc.free(block)
after = libc.mallinfo2()
print(json.dumps({"own_mapping": during.hblkhd - before.hblkhd, "heap_growth": during.arena - before.arena,
                  "given_back": during.arena - after.arena}))
"""


def _one_block(mode: str) -> dict[str, int]:
    done = subprocess.run([sys.executable, "-c", ONE_BLOCK, mode], capture_output=True, text=True, timeout=120,
                          env={"PATH": "/usr/bin:/bin"})
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.skipif(not GLIBC, reason="the tuning applies to glibc only")
def test_tuned_blocks_come_from_the_heap_and_stay_there():
    block = 20 * 2**20
    default, tuned = _one_block("default"), _one_block("tuned")
    assert default["own_mapping"] >= block, default  # unmapped when freed
    assert tuned["own_mapping"] == 0 and tuned["heap_growth"] > 0 and tuned["given_back"] == 0, tuned


@pytest.fixture
def fresh_record(monkeypatch):
    """No tuning recorded yet in this process (what a call records is process-wide)."""
    monkeypatch.setattr(allocator, "_current", None)
    for name in (*allocator._USER_VARIABLES, "GLIBC_TUNABLES"):
        monkeypatch.delenv(name, raising=False)


@pytest.mark.parametrize("variable, value", [("MALLOC_TRIM_THRESHOLD_", "1000000"),
                                             ("GLIBC_TUNABLES", "glibc.malloc.mmap_threshold=65536")])
def test_settings_from_the_environment_are_left_alone(fresh_record, monkeypatch, variable, value):
    monkeypatch.setenv(variable, value)
    settings = allocator.tune_cpu_allocator()
    assert not settings.applied and variable in settings.reason
    assert allocator.current_settings() == settings


def test_other_c_libraries_are_left_alone(fresh_record, monkeypatch):
    monkeypatch.setattr(allocator.platform, "libc_ver", lambda: ("", ""))
    settings = allocator.tune_cpu_allocator()
    assert not settings.applied and settings.reason.startswith("not glibc")


@pytest.mark.parametrize("kwargs, parameter", [({"mmap_threshold": 0}, "mmap_threshold"),
                                               ({"mmap_threshold": allocator.MMAP_THRESHOLD + 1}, "mmap_threshold"),
                                               ({"trim_threshold": 0}, "trim_threshold")])
def test_bad_thresholds_name_the_parameter(fresh_record, kwargs, parameter):
    with pytest.raises(ValueError, match=parameter):
        allocator.tune_cpu_allocator(**kwargs)
    assert allocator.current_settings() is None


@pytest.mark.skipif(not GLIBC, reason="the tuning applies to glibc only")
def test_a_second_call_keeps_the_record(fresh_record):
    first = allocator.tune_cpu_allocator()
    assert first.applied and (first.mmap_threshold, first.trim_threshold) == (allocator.MMAP_THRESHOLD,
                                                                              allocator.TRIM_THRESHOLD)
    assert allocator.tune_cpu_allocator() is first


@pytest.mark.parametrize("tune", [True, False])
def test_training_bundles_tune_unless_told_not_to(fresh_record, tmp_path, tune):
    workflow = _workflow("seg", "train", "train", synthetic=TINY, output_dir=str(tmp_path), tune_cpu_allocator=tune)
    workflow.initialize()
    settings = allocator.current_settings()
    assert (settings is not None) == tune
    if tune:
        assert settings.applied == GLIBC
    workflow.finalize()
