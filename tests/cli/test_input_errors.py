"""Bad input of every kind ends in one line ``spatialspec <command>: error: <what and where>``, exit status 2, no
traceback (``-v`` shows it), and a failed command leaves its ``--out`` as it was."""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from spatialspec import registry
from spatialspec.cli.main import input_error_line, main
from spatialspec.data import SyntheticParams, write_synthetic_datalist
from spatialspec.errors import InputError

REPO = Path(__file__).resolve().parents[2]
TINY = ["--synthetic", "m=10", "--synthetic", "n=16", "--synthetic", "a=4", "--synthetic", "b=4",
        "--synthetic", "n_val=10", "--synthetic", "n_test=10", "--synthetic", "mu_y=0.5"]
SMALL_AUDIT = ["--synthetic", "n=16", "a=4", "b=4", "n_test=8", "m=4", "n_val=4", "mu_y=0.5"]


@pytest.fixture(scope="module")
def good(tmp_path_factory) -> Path:
    """A valid PNG datalist of the synthetic data (relative paths)."""
    return write_synthetic_datalist(tmp_path_factory.mktemp("data"), SyntheticParams(m=8, n=12, a=3, b=4, n_val=8,
                                                                                      n_test=10, mu_y=0.5), fmt="png")


@pytest.fixture(scope="module")
def bad(good) -> Path:
    """The issue's case: a test split whose entries lack y (training and validation are fine)."""
    content = json.loads(good.read_text())
    for entry in content["test"]:
        entry.pop("y")
    path = good.parent / "test_without_y.json"
    path.write_text(json.dumps(content))
    return path


def one_error_line(capsys, command: str) -> str:
    """The error line of the last command, checking it is the only line on stderr and shows no traceback."""
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert "Traceback" not in err
    assert len(lines) == 1, err
    assert lines[0].startswith(f"spatialspec {command}: error: "), lines[0]
    return lines[0]


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): (p.read_bytes() if p.is_file() else b"<dir>")
            for p in sorted(folder.rglob("*"))}


def test_study_with_a_bad_datalist_fails_before_writing(bad, tmp_path, capsys):
    out = tmp_path / "new" / "study"
    assert main(["study", "--datalist", str(bad), "--levels", "seg", "--seeds", "0", "--epochs", "1",
                 "--out", str(out), "--no-progress"]) == 2
    line = one_error_line(capsys, "study")
    assert f"datalist {bad}: 10 problems: split 'test', entries 0-9 (10), field 'y': missing" in line
    assert not (tmp_path / "new").exists()


def test_study_with_a_bad_datalist_leaves_an_existing_out_as_it_was(bad, tmp_path, capsys):
    out = tmp_path / "study"
    (out / "runs").mkdir(parents=True)
    (out / "notes.txt").write_text("mine")
    before = snapshot(out)
    assert main(["study", "--datalist", str(bad), "--out", str(out), "--no-progress"]) == 2
    one_error_line(capsys, "study")
    assert snapshot(out) == before


def test_verbose_shows_the_traceback(bad, tmp_path, capsys):
    argv = ["study", "--datalist", str(bad), "--out", str(tmp_path / "o"), "--no-progress"]
    for verbose in (["-v", *argv], [*argv, "-v"]):
        assert main(verbose) == 2
        err = capsys.readouterr().err
        assert "Traceback" in err and "DatalistError" in err
        assert err.strip().splitlines()[-1].startswith("spatialspec study: error: datalist ")
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("command", ["sweep create", "measures", "audit"])
def test_other_commands_validate_the_datalist(command, bad, good, tmp_path, capsys):
    out = tmp_path / "out"
    argv = {
        "sweep create": ["sweep", "create", "--out", str(out), "--datalist", str(bad)],
        "measures": ["measures", "--datalist", str(bad), "--split", "test", "--out", str(out)],
        # the datalist is checked before the checkpoint is read
        "audit": ["audit", "--bundle", "segmentation", "--checkpoint", str(good), "--datalist", str(bad),
                  "--out", str(out)],
    }[command]
    assert main(argv) == 2
    assert "split 'test', entries 0-9 (10), field 'y': missing" in one_error_line(capsys, command.split()[0])
    assert not out.exists()


@pytest.mark.parametrize("argv, message", [
    (["study", "--seeds", "a"], "--seeds must be comma-separated integers, got 'a'"),
    (["study", "--epochs", "0"], "epochs must be >= 1, got 0"),
    (["study", "--score", "foo"], "unknown score 'foo'"),
    (["study", "--levels", "nonsense"], "unknown level 'nonsense'"),
    (["study", "--synthetic", "rho=abc"], "synthetic parameter rho: cannot read 'abc' as float"),
    (["study", "--synthetic", "mu_s=inf"], "synthetic parameter mu_s must be a finite number, got inf"),
    (["study", "--seeds", "0,0", "--levels", "seg"], "names these runs more than once (a level, model, seed or label "
                                                     "budget given twice): seg-pixel-s0"),
    (["study", "--set", "learning_rte=0.1"], "--set learning_rte: no bundle of the study has this setting (did you "
                                             "mean learning_rate?)"),
    (["study", "--set", "nonsense#x=1", "--levels", "seg"], "--set nonsense#x: the bundle(s) segmentation have no "
                                                            "setting 'nonsense'"),
    (["study", "--tracking-uri", "foo://host"], "tracking URI 'foo://host': MLflow has no tracking store for the "
                                                "scheme 'foo'"),
    (["study", "--levels", "seg", "--location-labels", "1000"], "location_labels: the budget 1000 exceeds the 150 "
                                                                "samples of the synthetic training split"),
    (["sweep", "create", "--out", "{out}", "--seeds", "0,0"], "more than once"),
])
def test_bad_options_end_in_one_line(argv, message, tmp_path, capsys):
    out = tmp_path / "out"
    argv = [a.replace("{out}", str(out)) for a in argv]
    if argv[0] == "study":
        argv += ["--out", str(out), "--no-progress"]
    assert main(argv) == 2
    assert message in one_error_line(capsys, argv[0])
    assert not out.exists()


def test_a_failure_in_the_first_run_leaves_out_as_it_was(tmp_path, capsys):
    """An error only a bundle finds (a network the override breaks) still ends in one line and leaves nothing."""
    argv = ["study", "--levels", "seg", "--seeds", "0", "--epochs", "1", "--tracking-uri", "none", "--no-progress",
            "--set", "network_def#channels=[8]", *TINY]
    fresh = tmp_path / "fresh"
    assert main([*argv, "--out", str(fresh)]) == 2
    assert "channels" in one_error_line(capsys, "study")
    assert not fresh.exists()
    existing = tmp_path / "existing"
    existing.mkdir()
    (existing / "notes.txt").write_text("mine")
    assert main([*argv, "--out", str(existing)]) == 2
    one_error_line(capsys, "study")
    assert snapshot(existing) == {"notes.txt": b"mine"}


def test_audit_checkpoint_errors(tmp_path, capsys):
    not_a_checkpoint = tmp_path / "results.json"
    not_a_checkpoint.write_text("{}")
    other_network = tmp_path / "other.pt"
    torch.save({"model": {"fc.weight": torch.zeros(2, 3)}}, other_network)
    for path, message in ((not_a_checkpoint, "not a PyTorch checkpoint"),
                          (other_network, "does not fit network_def of")):
        assert main(["audit", "--bundle", "segmentation", "--checkpoint", str(path), *SMALL_AUDIT,
                     "--out", str(tmp_path / "audit")]) == 2
        line = one_error_line(capsys, "audit")
        assert str(path) in line and message in line
    assert "1 unexpected tensors (first: fc.weight)" in line and "is it a checkpoint of another bundle?" in line
    assert not (tmp_path / "audit").exists()


def test_real_data_inputs(tmp_path, capsys):
    (tmp_path / "tubes.pkl").write_bytes(pickle.dumps([1, 2]))
    assert main(["data", "siim-tubes", "--pickle", str(tmp_path / "tubes.pkl"), "--out", str(tmp_path / "t.csv")]) == 2
    assert "expected a dict of str -> bool, got list" in one_error_line(capsys, "data")
    (tmp_path / "tubes.csv").write_bytes(b"\xff\xfe\x00binary\x81")
    (tmp_path / "siim").mkdir()
    (tmp_path / "siim" / "train-rle.csv").write_text("ImageId, EncodedPixels\n")
    assert main(["data", "siim", "--root", str(tmp_path / "siim"), "--tubes", str(tmp_path / "tubes.csv"),
                 "--out", str(tmp_path / "o")]) == 2
    line = one_error_line(capsys, "data")
    assert f"tubes file {tmp_path / 'tubes.csv'} is not a text (UTF-8) CSV file" in line
    assert not (tmp_path / "o").exists() and not (tmp_path / "t.csv").exists()


@pytest.mark.parametrize("error, line", [
    (InputError("datalist x: 1 problem"), "datalist x: 1 problem"),
    (ValueError("first line\nsecond line"), "first line (-v shows the rest)"),
    (FileNotFoundError("checkpoint not found: a.pt"), "checkpoint not found: a.pt"),
    (RuntimeError("a bug"), None),
    (KeyError("x"), None),
])
def test_input_error_line(error, line):
    assert input_error_line(error) == line


def _raise_chain(inner: BaseException, outer: BaseException) -> BaseException:
    try:
        try:
            raise inner
        except BaseException as e:
            raise outer from e
    except BaseException as e:
        return e


def test_input_error_line_finds_the_culprit_in_a_chain():
    monai_wrapped = _raise_chain(InputError("datalist x: 2 problems"),
                                 RuntimeError("Failed to evaluate ConfigExpression: $spatialspec.data..."))
    assert input_error_line(monai_wrapped) == "datalist x: 2 problems"
    # any error of a bundle expression is reported by its root cause
    assert input_error_line(_raise_chain(KeyError("foo"), RuntimeError("Failed to instantiate component"))) == \
        "KeyError: 'foo'"
    # the outermost ValueError names the culprit, not the library error under it
    wrapped = _raise_chain(pickle.UnpicklingError("invalid load key"), ValueError("checkpoint a.pt: unreadable"))
    assert input_error_line(wrapped) == "checkpoint a.pt: unreadable"


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(REPO)}


def test_console_entry_point(bad, tmp_path):
    spatialspec = Path(sys.executable).parent / "spatialspec"
    command = [str(spatialspec)] if spatialspec.is_file() else [sys.executable, "-m", "spatialspec"]
    out = tmp_path / "out"
    result = subprocess.run([*command, "study", "--datalist", str(bad), "--out", str(out)], capture_output=True,
                            text=True, timeout=300, cwd=tmp_path, env=_env())
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines() == [
        f"spatialspec study: error: datalist {bad}: 10 problems: split 'test', entries 0-9 (10), field 'y': missing"]
    assert not out.exists()


def test_monai_bundle_run_fails_before_training(good, tmp_path):
    content = json.loads(good.read_text())
    content["training"][2]["label"] = "training/absent_mask.png"
    datalist = good.parent / "training_mask_missing.json"
    datalist.write_text(json.dumps(content))
    output_dir = tmp_path / "run"
    bundles = REPO / "bundles"
    configs = repr([str(f.relative_to(REPO)) for f in registry.config_files("seg", bundles_dir=bundles)])
    result = subprocess.run(
        [sys.executable, "-m", "monai.bundle", "run", "--config_file", configs,
         "--meta_file", str(registry.meta_file("seg", bundles).relative_to(REPO)), "--datalist", str(datalist),
         "--output_dir", str(output_dir), "--epochs", "1"],
        capture_output=True, text=True, timeout=300, cwd=REPO, env=_env())
    assert result.returncode == 2, result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    assert (f"error: datalist {datalist}: 1 problem: split 'training', entry 2, field 'label': file not found: "
            f"{good.parent / 'training' / 'absent_mask.png'}") in result.stderr.splitlines()
    assert not output_dir.exists()
