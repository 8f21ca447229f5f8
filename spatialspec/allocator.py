"""The C allocator's settings for training on CPU (issue 17).

PyTorch allocates CPU tensors with the C library's ``malloc``. Under glibc's default, dynamic settings, memory freed
at the top of the heap is given back to the kernel once more than a few megabytes lie free there, and the next
allocation maps it again, page by page: every 4 KiB page then costs a page fault, in system time. A training loop
that allocates and frees the same activations every step meets this on every step. On the default synthetic study
(a small UNet, 150 training and 300 validation images of 40 x 40 a step) it cost about 15,000 page faults an epoch
and 1.8 s of system time a run for a plain PyTorch loop, and about twice that for the study, whose evaluator and
loss allocate a few more tensors a step (``docs/benchmarks.md``, "The study's overhead").

:func:`tune_cpu_allocator` fixes glibc's two thresholds with ``mallopt``: allocations up to ``mmap_threshold``
come from the heap (not from a mapping of their own), and up to ``trim_threshold`` of free memory stays in the process
to serve the next step. It changes no number a run computes, only where its memory comes from; the price is that a
process keeps up to ``trim_threshold`` bytes of freed memory. The bundles call it in ``initialize`` unless their
``tune_cpu_allocator`` is false. It leaves the allocator alone where the user has already chosen settings
(``MALLOC_*_`` variables or ``glibc.malloc`` tunables in the environment), and where the C library is not glibc.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os
import platform
from dataclasses import dataclass

__all__ = ["AllocatorSettings", "tune_cpu_allocator", "current_settings", "MMAP_THRESHOLD", "TRIM_THRESHOLD"]

logger = logging.getLogger(__name__)

#: the largest mmap threshold glibc accepts on 64-bit systems (half its 64 MiB heap size)
MMAP_THRESHOLD = 32 * 2**20
#: free memory a process keeps at the top of its heap before giving it back to the kernel
TRIM_THRESHOLD = 256 * 2**20

# mallopt parameters, from glibc's malloc.h
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
_USER_VARIABLES = ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "MALLOC_TOP_PAD_", "MALLOC_MMAP_MAX_")


@dataclass(frozen=True)
class AllocatorSettings:
    """What :func:`tune_cpu_allocator` did: whether it set the thresholds, and if not, why not."""

    applied: bool
    reason: str
    mmap_threshold: int | None = None
    trim_threshold: int | None = None


_current: AllocatorSettings | None = None


def tune_cpu_allocator(mmap_threshold: int = MMAP_THRESHOLD,
                       trim_threshold: int = TRIM_THRESHOLD) -> AllocatorSettings:
    """Fix glibc's mmap and trim thresholds for this process, so that a training loop reuses the memory of its last
    step instead of mapping it again (see the module's docstring). Calling it again with the same values does nothing
    more; the settings hold for the whole process and the workers it forks.

    Args:
        mmap_threshold: allocations larger than this get a mapping of their own (1 byte to 32 MiB).
        trim_threshold: free memory (bytes, >= 1) kept at the top of the heap.

    Returns:
        what was done, with the reason when nothing was.

    Raises:
        ValueError: naming the parameter out of range.
    """
    global _current
    if not 0 < mmap_threshold <= MMAP_THRESHOLD:
        raise ValueError(f"tune_cpu_allocator: mmap_threshold must be between 1 and {MMAP_THRESHOLD} bytes "
                         f"(glibc's largest), got {mmap_threshold}")
    if trim_threshold < 1:
        raise ValueError(f"tune_cpu_allocator: trim_threshold must be >= 1 byte, got {trim_threshold}")
    if _current is not None and _current.applied and (_current.mmap_threshold, _current.trim_threshold) == (
            mmap_threshold, trim_threshold):
        return _current
    chosen = [name for name in _USER_VARIABLES if name in os.environ]
    if "glibc.malloc" in os.environ.get("GLIBC_TUNABLES", ""):
        chosen.append("GLIBC_TUNABLES")
    if chosen:
        return _record(AllocatorSettings(False, f"left as the environment sets it ({', '.join(chosen)})"))
    libc_name, _ = platform.libc_ver()
    if libc_name != "glibc":
        return _record(AllocatorSettings(False, f"not glibc ({libc_name or platform.system()})"))
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    # mallopt returns 1 on success; the mmap threshold first: setting either one turns off the dynamic adjustment
    if not (libc.mallopt(_M_MMAP_THRESHOLD, mmap_threshold) and libc.mallopt(_M_TRIM_THRESHOLD, trim_threshold)):
        return _record(AllocatorSettings(False, "glibc's mallopt refused the thresholds"))
    return _record(AllocatorSettings(True, "set", mmap_threshold, trim_threshold))


def current_settings() -> AllocatorSettings | None:
    """What the last :func:`tune_cpu_allocator` call of this process did (``None``: it was not called)."""
    return _current


def _record(settings: AllocatorSettings) -> AllocatorSettings:
    global _current
    if settings != _current:
        if settings.applied:
            logger.info("CPU allocator: mmap threshold %d bytes, trim threshold %d bytes", settings.mmap_threshold,
                        settings.trim_threshold)
        else:
            logger.info("CPU allocator not tuned: %s", settings.reason)
    _current = settings
    return settings
