"""spatialspec.distributed: backend and device choice, and a real 2-process gloo group on the CPU (two interpreters
with torchrun's environment) that joins, all-reduces and leaves through the helpers."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from spatialspec import distributed
from tests.ports import free_port

REPO_ROOT = Path(__file__).resolve().parents[2]

_RANK = """
import json, torch, torch.distributed as dist
from spatialspec.distributed import destroy_distributed, init_distributed
device = init_distributed()
again = init_distributed()  # joining twice is a no-op
value = torch.tensor([float(dist.get_rank() + 1)])
dist.all_reduce(value)
report = {"device": str(device), "again": str(again), "backend": dist.get_backend(), "world": dist.get_world_size(),
          "sum": value.item()}
destroy_distributed()
report["left"] = not dist.is_initialized()
destroy_distributed()  # no group: nothing to do
print("RESULT " + json.dumps(report))
"""


def test_backend_and_device_without_gpus(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setenv("LOCAL_RANK", "1")
    assert distributed.default_backend() == "gloo"
    assert distributed.local_device() == torch.device("cpu")


def test_device_with_gpus_is_the_local_rank(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert distributed.default_backend() == "nccl"
    monkeypatch.setenv("LOCAL_RANK", "3")
    assert distributed.local_device() == torch.device("cuda:3")
    monkeypatch.delenv("LOCAL_RANK")
    assert distributed.local_device() == torch.device("cuda:0")  # one process, no torchrun
    monkeypatch.setenv("LOCAL_RANK", "x")
    with pytest.raises(ValueError, match="LOCAL_RANK"):
        distributed.local_device()


def test_destroy_without_a_group_does_nothing():
    assert not torch.distributed.is_initialized()
    distributed.destroy_distributed()


def test_two_process_gloo_group(tmp_path):
    port = free_port()
    jobs = []
    for rank in range(2):
        env = {**os.environ, "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port), "RANK": str(rank),
               "LOCAL_RANK": str(rank), "WORLD_SIZE": "2", "CUDA_VISIBLE_DEVICES": ""}
        jobs.append(subprocess.Popen([sys.executable, "-c", _RANK], cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, text=True))
    reports = []
    for job in jobs:
        out, _ = job.communicate(timeout=120)
        assert job.returncode == 0, out[-3000:]
        reports.append(json.loads(next(line for line in out.splitlines() if line.startswith("RESULT "))[7:]))
    for report in reports:
        assert report == {"device": "cpu", "again": "cpu", "backend": "gloo", "world": 2, "sum": 3.0, "left": True}
