"""The resume checkpoint is written by a background thread (spatialspec.handlers.checkpoint_writer, issue 17): the
trainer does not wait for the write, yet every reader in the process sees the last checkpoint taken, writes land in
the order they were taken, and a failed write is re-raised by the handler."""

from __future__ import annotations

import subprocess
import sys
import threading
import time

import pytest
import torch

from spatialspec.handlers import checkpoint_writer, load_resume_checkpoint
from tests.handlers.test_resume import _Loop, _seed


@pytest.fixture
def slow_writes(monkeypatch):
    """Every write waits until the test releases it (or 10 s); records the thread that writes, once it has begun."""
    release, begun, threads = threading.Event(), threading.Event(), []
    write = checkpoint_writer._write

    def slow(path, state):
        threads.append(threading.current_thread().name)
        begun.set()
        release.wait(10)
        return write(path, state)

    monkeypatch.setattr(checkpoint_writer, "_write", slow)
    yield release, begun, threads
    release.set()
    checkpoint_writer.wait_for_checkpoint_writes()


def _take(loop: _Loop, epoch: int) -> None:
    """The handler's save at the end of ``epoch``, as the trainer calls it."""
    loop.engine.state.epoch, loop.engine.state.max_epochs = epoch, 3
    loop.handler.save(loop.engine)


def test_saving_does_not_wait_for_the_write_and_readers_do(tmp_path, slow_writes):
    release, begun, threads = slow_writes
    _seed()
    loop = _Loop(tmp_path / "latest.pt", epochs=3)
    begin = time.perf_counter()
    _take(loop, 1)
    assert time.perf_counter() - begin < 5 and not (tmp_path / "latest.pt").exists()
    assert begun.wait(10) and threads == ["spatialspec-checkpoint_0"]
    threading.Timer(0.3, release.set).start()
    assert load_resume_checkpoint(tmp_path / "latest.pt")["epoch"] == 1  # waits for the write


def test_the_trainer_returns_once_its_last_checkpoint_is_written(tmp_path, slow_writes):
    release, _, _ = slow_writes
    threading.Timer(0.3, release.set).start()
    _seed()
    _Loop(tmp_path / "latest.pt", epochs=2).run()
    assert torch.load(tmp_path / "latest.pt", weights_only=True)["epoch"] == 2  # a plain read: no waiting here


def test_writes_land_in_the_order_taken(tmp_path, slow_writes):
    release, _, _ = slow_writes
    for epoch in (1, 2, 3):
        checkpoint_writer.write_checkpoint_in_background(tmp_path / "latest.pt", {"epoch": epoch})
    release.set()
    checkpoint_writer.wait_for_checkpoint_writes()
    assert torch.load(tmp_path / "latest.pt", weights_only=True)["epoch"] == 3


def test_a_failed_write_is_raised_by_the_next_save(tmp_path, monkeypatch):
    _seed()
    loop = _Loop(tmp_path / "latest.pt", epochs=3)

    def full(path, state):
        raise OSError(28, "No space left on device", str(path))

    monkeypatch.setattr(checkpoint_writer, "_write", full)
    _take(loop, 1)  # queued: the error is not known yet
    with pytest.raises(OSError, match="No space left"):
        _take(loop, 2)


def test_a_process_that_dies_of_an_exception_still_writes_its_queued_checkpoint(tmp_path):
    target = tmp_path / "latest.pt"
    code = (
        "import time\n"
        "from spatialspec.handlers import checkpoint_writer as writer\n"
        "write = writer._write\n"
        "def slow(path, state):\n"
        "    time.sleep(0.5)\n"
        "    return write(path, state)\n"
        "writer._write = slow\n"
        f"writer.write_checkpoint_in_background({str(target)!r}, {{'epoch': 7}})\n"
        "raise RuntimeError('the training step failed')\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 1 and "the training step failed" in done.stderr
    assert torch.load(target, weights_only=True) == {"epoch": 7}
