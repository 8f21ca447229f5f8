"""Shared by the MONAI Label tests: random-init checkpoints of the served bundles, generated 2-D studies and a real
``monailabel start_server`` from the label environment (started on 127.0.0.1 and a free port, stopped by its PID)."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Iterator, Sequence
from email.parser import BytesParser
from pathlib import Path

import numpy as np
import pytest
import requests
import torch
from monai.bundle import ConfigParser
from PIL import Image

from spatialspec.label import DEFAULT_METHODS
from spatialspec.registry import config_files
from tests.ports import free_port

REPO_ROOT = Path(__file__).resolve().parents[2]
LABEL_VENV = REPO_ROOT / ".venv-label"
MONAILABEL = LABEL_VENV / "bin" / "monailabel"
START_TIMEOUT = 180


def bundle_network(name: str, dataset: str | None = None, paper_scale: bool = False) -> torch.nn.Module:
    """The network of the level serving model ``name``, built from its inference config chain (for ``dataset`` and
    at paper scale when asked)."""
    parser = ConfigParser()
    parser.read_config([str(f) for f in config_files(DEFAULT_METHODS[name], "inference", dataset, paper_scale,
                                                     bundles_dir=REPO_ROOT / "bundles")])
    return parser.get_parsed_content("network_def", instantiate=True)


def write_checkpoints(folder: Path, seed: int = 0) -> dict[str, Path]:
    """One seeded random-init checkpoint per served model; ``bbox`` uses the ``{"model": ...}`` layout that
    ``CheckpointSaver`` writes for several objects, the others a bare state dict."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = {}
    for k, name in enumerate(DEFAULT_METHODS):
        torch.manual_seed(seed + k)
        state = bundle_network(name).state_dict()
        paths[name] = folder / f"{name}.pt"
        torch.save({"model": state} if name == "bbox" else state, paths[name])
    return paths


def write_studies(folder: Path, count: int = 5, shape: tuple[int, int] = (40, 48), seed: int = 0) -> list[str]:
    """``count`` 8-bit grey PNGs of ``shape`` (rows, columns; not square, so a transposed label shows), half of
    them with a bright square; returns the image ids."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    ids = []
    for i in range(count):
        image = rng.normal(90, 20, size=shape)
        if i % 2:
            image[8:16, 10:18] += 120
        ids.append(f"image_{i:02d}")
        Image.fromarray(np.clip(image, 0, 255).astype(np.uint8)).save(folder / f"{ids[-1]}.png")
    return ids


def wait_for_info(url: str, process: subprocess.Popen) -> dict | None:
    """``/info/`` of the server at ``url`` once it answers; ``None`` if it exits or START_TIMEOUT passes."""
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline and process.poll() is None:
        try:
            response = requests.get(f"{url}/info/", timeout=5)
            if response.status_code == 200:
                return response.json()
        except requests.ConnectionError:
            pass
        time.sleep(1)
    return None


def stop_server(process: subprocess.Popen) -> None:
    """Stop the server by its PID: SIGTERM, then SIGKILL if it has not exited after 30 s."""
    os.kill(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.kill(process.pid, signal.SIGKILL)
        process.wait()


@contextlib.contextmanager
def running_server(app: Path, studies: Path, root: Path, models: Sequence[str]) -> Iterator[dict]:
    """``monailabel start_server`` on ``app`` serving ``models``, its log and sessions under ``root``; yields
    ``{"url", "info", "log"}`` once ``/info/`` answers (fails the test with the log's tail if it never does)."""
    port = free_port()
    env = dict(os.environ, PATH=f"{LABEL_VENV / 'bin'}{os.pathsep}{os.environ['PATH']}",
               MONAI_LABEL_SESSION_PATH=str(root / "sessions"), PYTHONUNBUFFERED="1")
    log_path = root / "server.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [str(MONAILABEL), "start_server", "--app", str(app), "--studies", str(studies), "--host", "127.0.0.1",
             "--port", str(port), "--conf", "models", ",".join(models)],
            stdout=log, stderr=subprocess.STDOUT, env=env, cwd=root)
    url = f"http://127.0.0.1:{port}"
    try:
        info = wait_for_info(url, process)
        if info is None:
            pytest.fail(f"monailabel start_server did not answer /info/ (exit code {process.poll()}):\n"
                        + log_path.read_text()[-4000:])
        yield {"url": url, "info": info, "log": log_path}
    finally:
        stop_server(process)


def multipart(response: requests.Response) -> dict[str, bytes]:
    """The parts of MONAI Label's multipart infer answer, by form name."""
    header = f"Content-Type: {response.headers['content-type']}\r\n\r\n".encode()
    message = BytesParser().parsebytes(header + response.content)
    return {part.get_param("name", header="content-disposition"): part.get_payload(decode=True)
            for part in message.get_payload()}
