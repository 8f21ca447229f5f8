"""The command line answers without torch and MONAI where it needs neither (issue 17, part 1).

Every entry point runs in a fresh interpreter; afterwards neither ``torch`` nor ``monai`` (nor ignite, which imports
torch) may be in ``sys.modules``. No timing: the modules a command imports are what make it slow (MONAI about 4.5 s,
torch 1.5 s on a 2-core machine), and they are checked exactly.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from spatialspec.cli.main import build_parser
from spatialspec.metrics import subgroup_aurocs
from spatialspec.study.predictions import predictions_filename, write_predictions

#: top-level packages a light entry point must not import
HEAVY = ("torch", "monai", "ignite", "ray")

_CHILD = """
import json, runpy, sys
argv = json.loads(sys.argv[1])
checked = []
for args in argv:
    try:
        if args and args[0] == "-m":  # `python -m spatialspec ...`
            sys.argv = ["spatialspec", *args[1:]]
            runpy.run_module("spatialspec", run_name="__main__", alter_sys=True)
            rc = 0
        else:
            from spatialspec.cli.main import main
            rc = main(args)
    except SystemExit as e:  # --help, and `python -m spatialspec`, exit through SystemExit
        rc = e.code or 0
    heavy = sorted({m.split(".")[0] for m in sys.modules} & set(HEAVY))
    checked.append({"argv": args, "rc": rc, "heavy": heavy})
    if rc or heavy:
        break
print("RESULT " + json.dumps(checked))
"""


def run_fresh(argvs: list[list[str]], cwd: Path) -> list[dict]:
    """Run the command lines ``argvs`` one after the other in one fresh interpreter; after each, the exit status and
    the heavy modules then imported. Stops at the first that fails or imports a heavy module."""
    code = f"HEAVY = {HEAVY!r}\n{_CHILD}"
    result = subprocess.run([sys.executable, "-c", code, json.dumps(argvs)], cwd=cwd, capture_output=True, text=True,
                            timeout=300)
    lines = [line for line in result.stdout.splitlines() if line.startswith("RESULT ")]
    assert result.returncode == 0 and lines, f"interpreter failed:\n{result.stdout[-2000:]}\n{result.stderr[-3000:]}"
    return json.loads(lines[-1][len("RESULT "):])


def assert_light(argvs: list[list[str]], cwd: Path) -> None:
    """Every command line of ``argvs`` exits 0 and leaves torch, MONAI and ignite unimported."""
    checked = run_fresh(argvs, cwd)
    for entry in checked:
        assert entry["rc"] == 0, f"spatialspec {' '.join(entry['argv'])} exited {entry['rc']}"
        assert not entry["heavy"], f"spatialspec {' '.join(entry['argv'])} imported {entry['heavy']}"
    assert len(checked) == len(argvs)


def _command_paths(parser: argparse.ArgumentParser, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """Every sub-command of ``parser`` as its argument prefix (``("sweep", "create")``), the parser itself first."""
    paths = [prefix]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, child in action.choices.items():
                paths += _command_paths(child, (*prefix, name))
    return paths


COMMANDS = _command_paths(build_parser())


def test_every_command_is_covered():
    names = {path[0] for path in COMMANDS if path}
    assert {"data", "study", "compare", "cost", "measures", "audit", "plan", "sweep", "sync", "label-app",
            "bundle", "report"} <= names
    assert {("bundle", "list"), ("bundle", "configs"), ("bundle", "export")} <= set(COMMANDS)
    assert ("sweep", "create") in COMMANDS and ("sweep", "run") in COMMANDS
    assert ("sweep", "plan") in COMMANDS  # the deprecated alias of create, light too


def test_every_help_is_light(tmp_path):
    """``spatialspec --help`` and every sub-command's ``--help``, heavy commands (study, audit, sweep run) included:
    building the parser imports nothing heavy."""
    assert_light([[*path, "--help"] for path in COMMANDS] + [["--version"]], tmp_path)


def test_python_dash_m_is_light(tmp_path):
    assert_light([["-m", "--help"], ["-m", "cost", "--help"]], tmp_path)


def test_import_spatialspec_is_light(tmp_path):
    code = ("import sys, spatialspec, spatialspec.cli.main; "
            f"print(sorted(m for m in sys.modules if m.split('.')[0] in {HEAVY!r}))")
    result = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


@pytest.fixture(scope="module")
def results(tmp_path_factory) -> Path:
    """A label-budget results.json (for ``plan``), a study folder with per-image predictions (for ``compare``) and
    an empty MLflow buffer (for ``sync``), written by hand: no training."""
    root = tmp_path_factory.mktemp("light")
    plan_records = []
    for seed in (0, 1):
        for n, robust in ((10, 0.6), (100, 0.9)):
            plan_records.append({"level": "seg", "model": "pixel", "score": "mean", "seed": seed,
                                 "location_labels": n, "robust_auroc": robust, "overall_auroc": 0.95})
        plan_records.append({"level": "binary", "model": "pixel", "score": "mean", "seed": seed,
                             "location_labels": None, "robust_auroc": 0.1, "overall_auroc": 0.7})
    (root / "budget").mkdir()
    (root / "budget" / "results.json").write_text(json.dumps(plan_records))
    study = root / "study"
    records = []
    for level, shortcut in (("binary", True), ("seg", False)):
        for seed in (0, 1):
            rng = np.random.default_rng(100 + seed)
            y, s = rng.integers(0, 2, 80), rng.integers(0, 2, 80)
            score = rng.normal(size=80) + 2.0 * (s if shortcut else y)
            key = f"{level}-pixel-s{seed}"
            rel = f"runs/{key}/{predictions_filename('mean')}"
            write_predictions(study / rel, [f"test_{i:05d}" for i in range(80)], y, s, score)
            records.append({"level": level, "model": "pixel", "score": "mean", "seed": seed, "location_labels": None,
                            "run_key": key, "predictions": rel, **subgroup_aurocs(score, y, s)})
    (study / "results.json").write_text(json.dumps(records))
    (root / "mlflow_buffer.jsonl").write_text("")
    return root


LIGHT_COMMANDS = {
    "cost": ["cost", "--positives", "2669", "--json"],
    "cost table": ["cost", "--positives", "2669", "--levels", "binary,bbox,seg,dilate:2"],
    "plan": ["plan", "--budget", "50", "--results", "{root}/budget"],
    "sweep create": ["sweep", "create", "--out", "{root}/sweep.json", "--out-dir", "{root}/runs", "--levels",
                   "binary,bbox,seg,jtt,seg-ssl", "--location-labels", "20,all", "--seeds", "0,1"],
    "sync": ["sync", "--buffer", "{root}/mlflow_buffer.jsonl", "--tracking-uri", "sqlite:///{root}/mlruns.db"],
    "compare": ["compare", "{root}/study", "--a", "binary", "--b", "seg", "--bootstrap", "50", "--json"],
    "report": ["report", "{root}/study", "--out", "{root}/report.html"],
    "measures --r": ["measures", "--r", "1", "40", "--samples", "100"],
    "measures --levels": ["measures", "--levels", "binary,patch:4,bbox,seg", "--samples", "50", "--json"],
    "label-app": ["label-app"],
    "bundle list": ["bundle", "list"],
    "bundle configs": ["bundle", "configs", "jtt", "--paper-scale", "--dataset", "siim", "--multi-gpu"],
    "bundle configs --command": ["bundle", "configs", "seg-ssl", "--kind", "inference", "--command"],
}


@pytest.mark.parametrize("name", list(LIGHT_COMMANDS))
def test_light_command_imports_no_torch_nor_monai(name, results):
    """The commands that plan, price, compare, measure on the synthetic data, sync, locate the MONAI Label app or
    list the levels and methods and their bundle configs run to completion without torch and MONAI."""
    argv = [arg.format(root=results) for arg in LIGHT_COMMANDS[name]]
    assert_light([argv], results)
    if name == "sweep create":
        sweep = json.loads((results / "sweep.json").read_text())
        assert {run["key"] for run in sweep["runs"]} >= {"binary-pixel-s0", "seg-ssl-n20-s1", "binary-jtt-s0"}


def test_the_check_sees_a_heavy_command(tmp_path):
    """The check itself: ``audit`` loads a network with torch when it runs (here, until it finds no checkpoint), and
    the check reports it; a light command that slipped into importing torch or MONAI would fail above likewise."""
    checked = run_fresh([["audit", "--bundle", "segmentation", "--checkpoint", str(tmp_path / "none.pt")]], tmp_path)
    assert checked[0]["rc"] == 2
    assert "torch" in checked[0]["heavy"], checked
