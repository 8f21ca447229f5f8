"""``spatialspec sweep run --engine ray`` on a real local Ray head (127.0.0.1, 2 CPUs): every run of a 4-run sweep
finishes exactly once although the Ray worker of one run is SIGKILLed mid-run (retried, resumed from its checkpoint,
logged into the same MLflow run), with the figures of the same sweep run by ``--engine local``; finished runs are
skipped, a failing entry is named and not retried; an unreachable address or a missing Ray is one line, fast."""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from spatialspec.cli.main import main
from spatialspec.sweep.ray_local import LocalRayHead, free_port, processes_of
from spatialspec.sweep.run import entry_fingerprint

pytestmark = [pytest.mark.slow, pytest.mark.skipif(
    importlib.util.find_spec("ray") is None,
    reason="Ray is not installed: pip install 'spatialspec[ray]' (scripts/install.sh installs it into .venv)")]

TINY = ["--synthetic", "m=20", "--synthetic", "n=16", "--synthetic", "a=4", "--synthetic", "b=4",
        "--synthetic", "n_val=10", "--synthetic", "n_test=20", "--synthetic", "mu_y=0.5"]
ATTEMPT = "== spatialspec sweep (ray): attempt"


def _processes(text: str) -> dict[int, str]:
    """The processes whose command line contains ``text``: pid -> command line (arguments joined by NUL)."""
    found = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and int(entry.name) != os.getpid():
            try:
                cmdline = (entry / "cmdline").read_bytes().decode(errors="replace")
            except OSError:
                continue
            if text in cmdline:
                found[int(entry.name)] = cmdline
    return found


def _parent(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])


def _alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie, dead but not yet reaped by its new parent, does not)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except OSError:
        return False


@pytest.fixture(scope="module")
def ray_head():
    """A Ray head on 127.0.0.1 with 2 CPUs, shared by the module's tests; stopped without touching any other Ray."""
    with LocalRayHead(num_cpus=2) as head:
        yield head


def _create(root: Path, name: str, *extra: str) -> dict:
    out = root / f"{name}.json"
    assert main(["sweep", "create", "--out", str(out), "--out-dir", str(root / name), "--levels", "binary,seg",
                 "--seeds", "0,1", "--epochs", "3", *TINY, *extra]) == 0
    return json.loads(out.read_text())


def _mlflow_runs(sweep: dict) -> dict[str, list]:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=sweep["tracking_uri"])
    experiment = client.get_experiment_by_name(sweep["experiment_name"])
    runs: dict[str, list] = {}
    for r in client.search_runs([experiment.experiment_id]):
        runs.setdefault(r.info.run_name, []).append(r)
    return runs


def _kill_mid_run(run: dict, temp_dir: str, cli: subprocess.Popen, worker_too: bool) -> None:
    """Wait until ``run``'s bundle process has checkpointed its first epoch, then SIGKILL its Ray worker (the
    bundle process's parent) if ``worker_too``, else the bundle process itself (as the OOM killer would)."""
    checkpoint = Path(run["output_dir"]) / "resume" / "latest.pt"
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and cli.poll() is None:
        bundles = [pid for pid, cmd in _processes(f"--run_name\0{run['key']}\0").items()
                   if "monai.bundle" in cmd and run["output_dir"] in cmd]
        if bundles and checkpoint.is_file():
            worker = _parent(bundles[0])  # a Ray worker names itself after its task, ray::<task name>
            assert Path(f"/proc/{worker}/cmdline").read_text().startswith(f"ray::spatialspec-sweep:{run['key']}")
            assert worker in processes_of(temp_dir), "a worker of another Ray head"
            os.kill(worker if worker_too else bundles[0], signal.SIGKILL)
            # the bundle process dies with its worker at once (it would otherwise run on beside the retry)
            gone = time.monotonic() + 2.0
            while _alive(bundles[0]) and time.monotonic() < gone:
                time.sleep(0.02)
            assert not _alive(bundles[0]), "the bundle process outlived its killed worker"
            return
        time.sleep(0.05)
    pytest.fail(f"{run['key']} finished (or the sweep ended) before it could be killed mid-run")


@pytest.fixture(scope="module")
def ray_sweep(ray_head, tmp_path_factory):
    """The 4-run sweep run with --engine ray while, after their first epoch, the Ray worker of its first run is
    killed, and the bundle process of its second run (both run first, on the 2 CPUs)."""
    root = tmp_path_factory.mktemp("ray_sweep")
    sweep = _create(root, "ray")
    cli = subprocess.Popen([sys.executable, "-m", "spatialspec", "sweep", "run", str(root / "ray.json"),
                            "--engine", "ray", "--address", ray_head.address, "--cpus-per-run", "1",
                            "--max-retries", "2"],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        _kill_mid_run(sweep["runs"][0], ray_head.temp_dir, cli, worker_too=True)
        _kill_mid_run(sweep["runs"][1], ray_head.temp_dir, cli, worker_too=False)
        out, err = cli.communicate(timeout=600)
    finally:
        if cli.poll() is None:
            cli.kill()
            cli.communicate()
    return {"root": root, "sweep": sweep, "rc": cli.returncode, "out": out, "err": err}


def test_every_run_finishes_once_after_a_worker_dies(ray_sweep, tmp_path, monkeypatch, capsys):
    sweep = ray_sweep["sweep"]
    assert ray_sweep["rc"] == 0, ray_sweep["err"][-3000:]
    assert "4 finished, 0 skipped" in ray_sweep["out"] and "0 failed" in ray_sweep["out"]
    # the killed runs: a second attempt that resumed from the first epoch's checkpoint; the others: one attempt
    logs = [Path(sweep["out_dir"], "logs", f"{r['key']}.log").read_text() for r in sweep["runs"]]
    assert [log.count(ATTEMPT) for log in logs] == [2, 2, 1, 1]
    assert "resumed from" in logs[0] and "resumed from" in logs[1]
    # exactly one MLflow run per entry, FINISHED, carrying the entry's fingerprint
    runs = _mlflow_runs(sweep)
    assert sorted(runs) == sorted(r["key"] for r in sweep["runs"])
    for entry in sweep["runs"]:
        (run,) = runs[entry["key"]]
        assert run.info.status == "FINISHED"
        assert run.data.tags["spatialspec.fingerprint"] == entry_fingerprint(entry)["digest"]
    # the same sweep with --engine local gives the same figures (one thread per run, as Ray's num_cpus=1 gives)
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    local = _create(tmp_path, "local")
    assert main(["sweep", "run", str(tmp_path / "local.json"), "--jobs", "2"]) == 0
    local_runs = _mlflow_runs(local)
    for key, (run,) in runs.items():
        (other,) = local_runs[key]
        assert run.data.tags["spatialspec.fingerprint"] == other.data.tags["spatialspec.fingerprint"]
        assert run.data.metrics.keys() == other.data.metrics.keys() and "val_robust_auroc" in run.data.metrics
        for name, value in run.data.metrics.items():
            assert value == pytest.approx(other.data.metrics[name], abs=1e-6), (key, name)


def test_finished_runs_are_skipped_and_a_failure_is_named(ray_sweep, ray_head, capsys):
    """Again on the same folder with one entry broken: the 3 finished runs are skipped by fingerprint; the broken
    one fails (a non-zero exit: run once, not retried) and the command exits 1 naming it."""
    sweep = json.loads(json.dumps(ray_sweep["sweep"]))
    broken = sweep["runs"][1]
    broken["argv"][broken["argv"].index("--level") + 1] = "nonsense"
    path = ray_sweep["root"] / "broken.json"
    path.write_text(json.dumps(sweep))
    capsys.readouterr()
    assert main(["sweep", "run", str(path), "--engine", "ray", "--address", ray_head.address]) == 1
    out, err = capsys.readouterr()
    assert "0 finished, 3 skipped" in out and "1 failed" in out
    assert f"FAILED {broken['key']}: exit status" in err and len(err.strip().splitlines()) == 1
    log = Path(sweep["out_dir"], "logs", f"{broken['key']}.log").read_text()
    assert log.count(ATTEMPT) == 1


def test_an_unreachable_address_is_one_line_and_fast(tmp_path, capsys):
    sweep = _create(tmp_path, "none", "--tracking-uri", "none")
    capsys.readouterr()
    started = time.perf_counter()
    assert main(["sweep", "run", str(tmp_path / "none.json"), "--engine", "ray", "--address",
                 f"127.0.0.1:{free_port()}"]) == 2
    assert time.perf_counter() - started < 10
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "no Ray cluster answers there" in err and "--address 127.0.0.1:" in err
    assert not Path(sweep["out_dir"], "logs").exists()  # nothing ran


def test_a_missing_ray_names_the_extra(tmp_path, capsys, monkeypatch):
    _create(tmp_path, "none", "--tracking-uri", "none")
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` raises ImportError
    capsys.readouterr()
    assert main(["sweep", "run", str(tmp_path / "none.json"), "--engine", "ray"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == "spatialspec sweep: error: --engine ray: Ray is not installed; pip install 'spatialspec[ray]'"


def test_a_run_out_of_retries_names_the_cause():
    """When Ray gives up on a task (its worker died, or its bundle process was killed, on every attempt), the outcome
    says which, and how many attempts there were."""
    import ray

    from spatialspec.sweep.ray_engine import RunKilled, _failure

    run, log = {"key": "seg-pixel-s0"}, Path("seg-pixel-s0.log")
    crashed = _failure(ray, run, ray.exceptions.WorkerCrashedError(), log, 4)
    assert (crashed.status, crashed.returncode, crashed.reason) == (
        "failed", None, "its Ray worker died on each of its 4 attempts")
    killed = ray.exceptions.RayTaskError("run_entry", "", RunKilled("seg-pixel-s0", 9)).as_instanceof_cause()
    assert _failure(ray, run, killed, log, 2).reason == (
        "its bundle process was killed by signal 9 on each of its 2 attempts")
