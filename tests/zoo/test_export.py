"""Exported bundles (spatialspec.zoo, ``spatialspec bundle export``; issue 14): a level, a two-stage baseline and a
paper-scale SIIM configuration, each exported into a temporary folder and driven from there the way a model-zoo user
drives a bundle: ``python -m monai.bundle run`` trains and ``verify_metadata`` / ``verify_net_in_out`` pass, with
the export folder as working directory and the source tree's ``bundles/`` out of reach (a ``sitecustomize`` audit
hook makes opening any file under it an error). One tiny checkpoint trained this way is exported again and its
measured figures are checked against the exported inference config's scores.

In-process: the exported configs merge to what the source chains merge to, the errors name their argument, study
records give the figures, and the command line.
"""

from __future__ import annotations

import ast
import csv
import json
import os
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from spatialspec.cli.main import main
from spatialspec.errors import InputError
from spatialspec.metrics import subgroup_aurocs
from spatialspec.registry import config_files
from spatialspec.zoo import SHIPPED_CHECKPOINT, export_bundle
from spatialspec.zoo.configs import merge_chain, merge_overlays, resolve_file_macros
from tests.fixtures_real import make_siim, write_tubes

REPO_ROOT = Path(__file__).resolve().parents[2]
BUNDLES = REPO_ROOT / "bundles"
SCHEMA = BUNDLES / "schema" / "meta_schema_20240725.json"
SCHEMA_MD5 = "76e1add273836515d0bbb3bc71962474"
# tiny synthetic data: 16 x 16 images; mu_y 0.5 so that every split very likely holds both classes
TINY = {"m": 20, "n": 16, "a": 4, "b": 4, "n_val": 10, "n_test": 20, "mu_y": 0.5}
SIIM_SIDE = 32  # image_size of the paper-scale SIIM export (the fixture PNGs are 64 x 64)
# name -> (export arguments, training overrides on the command line)
CASES = {
    "seg": ({}, ["--synthetic", repr(TINY)]),
    "jtt": ({}, ["--synthetic", repr(TINY), "--erm_epochs", "1"]),
    "classifier-siim": ({"dataset": "siim", "paper_scale": True, "overrides": {"image_size": SIIM_SIDE}},
                        ["--dataset_dir", "{siim}", "--batch_size", "4", "--val_batch_size", "4"]),
}
TIMEOUT = 300

_GUARD = """import os, sys
_SOURCE = {source!r}
def _hook(event, args):
    if event == "open" and args and isinstance(args[0], (str, bytes, os.PathLike)):
        path = os.path.abspath(os.fsdecode(args[0]))
        if path == _SOURCE or path.startswith(_SOURCE + os.sep):
            raise PermissionError("the exported bundle opened " + path + " of the source tree")
sys.addaudithook(_hook)
"""


# `cd FOLDER && python -m monai.bundle ARGS` for several (FOLDER, ARGS) in one interpreter, each folder's output
# after a marker line
_MARK = "@@ exported bundle @@"
_MONAI_BUNDLE = f"""import json, os, runpy, sys
previous = None
for folder, args in json.loads(sys.argv[1]):
    if folder != previous:
        print({_MARK!r}, folder, flush=True)
        previous = folder
    os.chdir(folder)
    sys.argv = ["monai.bundle", *args]
    runpy.run_module("monai.bundle", run_name="__main__", alter_sys=True)
"""


@pytest.fixture(scope="module")
def isolated_env(tmp_path_factory) -> dict[str, str]:
    """The environment of a user with spatialspec installed and no source tree: no ``SPATIALSPEC_BUNDLES``, no
    ``PYTHONPATH`` to the checkout, and an audit hook refusing to open anything under ``bundles/``."""
    guard = tmp_path_factory.mktemp("guard")
    (guard / "sitecustomize.py").write_text(_GUARD.format(source=str(BUNDLES.resolve())))
    env = {k: v for k, v in os.environ.items()
           if k not in ("SPATIALSPEC_BUNDLES", "PYTHONPATH", "MLFLOW_TRACKING_URI")}
    env.update(PYTHONPATH=str(guard), PYTHONUNBUFFERED="1")
    return env


def _run(args: list[str], cwd: Path, env: dict[str, str], log: Path) -> tuple[int, str]:
    with open(log, "w") as out:
        proc = subprocess.run([sys.executable, *args], cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT,
                              timeout=TIMEOUT)
    return proc.returncode, log.read_text(errors="replace")


def test_the_guard_refuses_the_source_tree(isolated_env, tmp_path):
    """The isolation itself: a process of that environment cannot read a source bundle config."""
    code, output = _run(["-c", f"open({str(BUNDLES / 'common' / 'configs' / 'train.yaml')!r})"], tmp_path,
                        isolated_env, tmp_path / "guard.log")
    assert code != 0 and "of the source tree" in output, output


@pytest.fixture(scope="module")
def siim(tmp_path_factory) -> Path:
    """A SIIM-ACR data folder (PNG + datalist.json) written by ``spatialspec data siim``'s reader from fixtures."""
    from spatialspec.data.siim import write_siim_datalist

    tmp = tmp_path_factory.mktemp("siim")
    truth = make_siim(tmp / "source")
    ids = list(truth["y"])
    tubes = write_tubes(tmp / "source" / "tubes.csv", ids[:8], [1, 0, 0, 1, 1, 1, 0, 0])
    return write_siim_datalist(tmp / "source", tmp / "siim", tubes=tubes, size=64).parent


@pytest.fixture(scope="module")
def exported(tmp_path_factory, isolated_env, siim) -> dict[str, dict]:
    """Every case exported, then, from its folder, trained one epoch by ``python -m monai.bundle run`` and checked by
    MONAI's ``verify_metadata`` and ``verify_net_in_out`` (two processes at a time: most of a run is importing
    MONAI)."""
    tmp = tmp_path_factory.mktemp("exported")
    schema = tmp / SCHEMA.name  # the schema, outside the source tree, so that nothing downloads it
    shutil.copy2(SCHEMA, schema)
    cases = {}
    for case, (kwargs, _) in CASES.items():
        cases[case] = {"folder": export_bundle(case.split("-")[0], tmp / case, **kwargs)}
    jobs, checks = [], []
    for case, (_, train_args) in CASES.items():
        folder = str(cases[case]["folder"])
        jobs.append((case, folder, ["-m", "monai.bundle", "run", "--config_file", "configs/train.yaml", "--meta_file",
                                    "configs/metadata.json", "--epochs", "1",
                                    *(a.replace("{siim}", str(siim)) for a in train_args)]))
        checks += [(folder, ["verify_metadata", "--meta_file", "configs/metadata.json", "--filepath", str(schema),
                             "--hash_val", SCHEMA_MD5]),
                   (folder, ["verify_net_in_out", "network_def", "--meta_file", "configs/metadata.json",
                             "--config_file", "configs/inference.yaml", "--device", "cpu"])]
    # MONAI's two checks of every folder in one interpreter (each would import MONAI again): one output part each
    jobs.append(("verify", str(tmp), ["-c", _MONAI_BUNDLE, json.dumps(checks)]))

    def job(entry):
        name, cwd, args = entry
        return name, _run(args, Path(cwd), isolated_env, tmp / f"{name}.log")

    with ThreadPoolExecutor(max_workers=2) as pool:
        for name, (code, output) in pool.map(job, jobs):
            if name != "verify":
                cases[name]["train"] = (code, output)
                continue
            parts = output.split(_MARK)[1:]
            for k, case in enumerate(CASES):
                part = parts[k] if k < len(parts) else output
                passed = part.count("verified with no error") == 2
                cases[case]["verify"] = (0 if passed else code or 1, part)
    return cases


def _assert_ran(result: tuple[int, str], marker: str) -> None:
    code, output = result
    assert code == 0, output[-6000:]
    assert marker in output, output[-3000:]


@pytest.mark.slow
@pytest.mark.parametrize("case", list(CASES))
def test_exported_bundle_trains_and_verifies_alone(case, exported):
    folder = exported[case]["folder"]
    _assert_ran(exported[case]["train"], "Engine run finished")
    assert (folder / "eval" / "models" / "model.pt").is_file()
    _assert_ran(exported[case]["verify"], "metadata is verified with no error")
    _assert_ran(exported[case]["verify"], "data shape of network is verified with no error")
    names = sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file() and "eval" not in p.parts)
    assert names == ["LICENSE", "configs/evaluate.yaml", "configs/inference.yaml", "configs/logging.conf",
                     "configs/metadata.json", "configs/multi_gpu_train.yaml", "configs/train.yaml", "docs/README.md"]
    for config in (folder / "configs").glob("*.yaml"):
        text = config.read_text()
        assert "bundles/" not in text and str(REPO_ROOT) not in text, config
    metadata = json.loads((folder / "configs" / "metadata.json").read_text())
    assert metadata["eval_metrics"] == {}  # no checkpoint, no results: nothing measured, and it says so
    assert "none measured" in metadata["description"]
    if case == "jtt":  # the first stage's output, read by the second
        assert (folder / "eval" / "jtt_error_set.json").is_file()
    if case == "classifier-siim":
        code, output = exported[case]["train"]
        assert "Key metric: val_overall_auroc" in output  # App. A.1: the paper-scale classifier's checkpoint rule
        image = metadata["network_data_format"]["inputs"]["image"]
        assert image["spatial_shape"] == [SIIM_SIDE, SIIM_SIDE] and image["modality"] == "CXR"


@pytest.fixture(scope="module")
def shipped(exported, tmp_path_factory) -> Path:
    """The tiny seg checkpoint trained from its export, exported again with it: figures measured on TINY data."""
    checkpoint = exported["seg"]["folder"] / "eval" / "models" / "model.pt"
    if not checkpoint.is_file():
        pytest.fail(f"the seg export did not train:\n{exported['seg']['train'][1][-3000:]}")
    return export_bundle("seg", tmp_path_factory.mktemp("shipped") / "seg", checkpoint=checkpoint,
                         eval_overrides={"synthetic": TINY})


@pytest.mark.slow
def test_shipped_checkpoint_and_measured_figures(shipped, exported, monkeypatch, tmp_path):
    """models/model.pt holds the trained weights; eval_metrics are the robust-AUROC figures of exactly the scores the
    self-contained inference.yaml computes with it, on the test split."""
    trained = torch.load(exported["seg"]["folder"] / "eval" / "models" / "model.pt", weights_only=True)
    state = torch.load(shipped / "models" / "model.pt", weights_only=True)
    assert state.keys() == trained.keys() and all(torch.equal(state[k], trained[k]) for k in state)
    assert not (shipped / "large_files.yml").exists()  # a small checkpoint ships in the folder

    from monai.bundle import ConfigWorkflow

    from spatialspec.data import SyntheticParams, generate_split

    monkeypatch.chdir(shipped)  # bundle_root "." is the working directory
    infer = ConfigWorkflow(config_file="configs/inference.yaml", meta_file="configs/metadata.json",
                           logging_file=False, workflow_type="infer", synthetic=TINY, output_dir=str(tmp_path))
    infer.initialize()
    assert infer.check_properties() in ([], None)
    infer.run()
    infer.finalize()
    with open(tmp_path / "scores.csv", newline="") as f:
        scores = {row[0].removesuffix("_image"): float(row[1]) for row in csv.reader(f) if row}
    test = generate_split(SyntheticParams(**TINY), "test", 0)
    y, s = np.array([d["y"] for d in test]), np.array([d["s"] for d in test])
    score = np.array([scores[f"test_{i:05d}"] for i in range(len(test))])
    expected = subgroup_aurocs(score, y, s)
    metrics = json.loads((shipped / "configs" / "metadata.json").read_text())["eval_metrics"]
    for name in ("robust_auroc", "overall_auroc", "worst_pair_auroc"):
        if np.isnan(expected[name]):
            assert metrics[f"test_{name}"] is None
        else:
            assert metrics[f"test_{name}"] == pytest.approx(expected[name], abs=1e-6), name
    assert np.isfinite(metrics["test_loss"])
    readme = (shipped / "docs" / "README.md").read_text()
    assert "measured at export on the test split (20 images)" in readme and "| test_robust_auroc |" in readme


@pytest.mark.slow
def test_a_large_checkpoint_is_listed_with_its_hash(shipped, exported, tmp_path):
    from monai.bundle import download_large_files

    checkpoint = exported["seg"]["folder"] / "eval" / "models" / "model.pt"
    out = export_bundle("seg", tmp_path / "large", checkpoint=checkpoint, measure=False, large_file_bytes=1,
                        weights_url="https://example.org/seg/model.pt")
    listed = yaml.safe_load((out / "large_files.yml").read_text())["large_files"]
    assert listed == [{"path": "models/model.pt", "url": "https://example.org/seg/model.pt",
                       "hash_val": _sha256(out / "models" / "model.pt"), "hash_type": "sha256"}]
    download_large_files(bundle_path=str(out))  # present with the right hash: nothing is downloaded
    metadata = json.loads((out / "configs" / "metadata.json").read_text())
    assert metadata["eval_metrics"] == {} and "measuring was turned off" in metadata["description"]


@pytest.mark.slow
def test_paper_scale_siim_checkpoint_is_measured_on_its_data_and_listed(exported, siim, tmp_path):
    checkpoint = exported["classifier-siim"]["folder"] / "eval" / "models" / "model.pt"
    if not checkpoint.is_file():
        pytest.fail(f"the SIIM export did not train:\n{exported['classifier-siim']['train'][1][-3000:]}")
    out = export_bundle("classifier", tmp_path / "siim", checkpoint=checkpoint, dataset="siim", paper_scale=True,
                        overrides={"image_size": SIIM_SIDE}, eval_overrides={"dataset_dir": str(siim)})
    listed = yaml.safe_load((out / "large_files.yml").read_text())["large_files"]
    assert [(f["path"], f["hash_val"]) for f in listed] == [("models/model.pt", _sha256(out / "models" / "model.pt"))]
    metadata = json.loads((out / "configs" / "metadata.json").read_text())
    n_test = len(json.loads((siim / "datalist.json").read_text())["test"])
    assert f"measured at export on the test split ({n_test} images) of SIIM (dataset_dir {siim})" in \
        metadata["description"]
    figures = metadata["eval_metrics"]
    assert {f"test_{n}" for n in ("loss", "robust_auroc", "overall_auroc", "worst_pair_auroc")} <= set(figures)
    assert all(v is None or 0.0 <= v <= 1.0 for k, v in figures.items() if k != "test_loss")
    assert figures["test_overall_auroc"] is not None
    assert "publish it and set its `url`" in (out / "docs" / "README.md").read_text()


def _sha256(path: Path) -> str:
    import hashlib

    return hashlib.sha256(path.read_bytes()).hexdigest()


# ---------------------------------------------------------------------------------------------------------------
# in-process: what the export writes, its errors, study records, the command line
# ---------------------------------------------------------------------------------------------------------------

CHAINS = [("seg", {}), ("jtt", {}), ("classifier", {"dataset": "siim", "paper_scale": True}),
          ("seg-spl", {"dataset": "isic"})]


@pytest.mark.parametrize("name, kwargs", CHAINS)
def test_exported_configs_merge_as_the_source_chains(name, kwargs, tmp_path):
    """train.yaml + evaluate.yaml / multi_gpu_train.yaml of the export read as the source chains do (bundle_root
    "."), and inference.yaml keeps exactly the source inference chain's content of every id it keeps, without the
    training engines."""
    folder = export_bundle(name, tmp_path / name, **kwargs)
    configs = folder / "configs"
    search = [REPO_ROOT, BUNDLES]

    def source(**chain) -> dict:
        merged = resolve_file_macros(merge_chain(config_files(name, bundles_dir=BUNDLES, **kwargs, **chain)), search)
        return {**merged, "bundle_root": "."}

    assert merge_chain([configs / "train.yaml"]) == source()
    assert merge_chain([configs / "train.yaml", configs / "evaluate.yaml"]) == source(kind="evaluate")
    assert merge_chain([configs / "train.yaml", configs / "multi_gpu_train.yaml"]) == source(multi_gpu=True)
    inference = merge_chain([configs / "inference.yaml"])
    assert _is_part(inference, source(kind="inference"))
    assert "optimizer" not in inference and "trainer" not in inference.get("train", {})
    from monai.bundle import ConfigParser

    parser = ConfigParser()
    parser.read_config(str(configs / "inference.yaml"))
    for key in ("network_def", "preprocessing", "postprocessing", "inferer"):
        assert parser.get_parsed_content(key) is not None  # builds from this file alone
    pred = json.loads((configs / "metadata.json").read_text())["network_data_format"]["outputs"]["pred"]
    assert pred["num_channels"] == len(pred["channel_def"]) == (3 if kwargs.get("dataset") == "isic" else 2)


def _is_part(part, whole) -> bool:
    """Whether ``part`` is ``whole`` with some dict keys left out (lists and other values equal)."""
    if isinstance(part, dict) and isinstance(whole, dict):
        return all(k in whole and _is_part(v, whole[k]) for k, v in part.items())
    return part == whole


def test_errors_name_the_argument(tmp_path):
    with pytest.raises(InputError, match="^name: unknown method 'nope'"):
        export_bundle("nope", tmp_path / "a")
    with pytest.raises(InputError, match="^dataset: one of siim, isic"):
        export_bundle("seg", tmp_path / "a", dataset="chexpert")
    with pytest.raises(InputError, match="^checkpoint: no such file"):
        export_bundle("seg", tmp_path / "a", checkpoint=tmp_path / "missing.pt")
    with pytest.raises(InputError, match="^bundles_dir: no spatialspec bundles"):
        export_bundle("seg", tmp_path / "a", bundles_dir=tmp_path)
    with pytest.raises(InputError, match="^overrides: cannot set 'nowhere#x'"):
        export_bundle("seg", tmp_path / "a", overrides={"nowhere#x": 1})
    (tmp_path / "taken").mkdir()
    with pytest.raises(InputError, match="^out: .* exists; pass --force"):
        export_bundle("seg", tmp_path / "taken")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["taken"]  # nothing written, no staging left


def test_a_checkpoint_of_another_network_is_refused(tmp_path):
    from monai.networks.nets import UNet

    wrong = tmp_path / "wrong.pt"
    torch.save(UNet(2, 1, 2, channels=(4, 8), strides=(2,)).state_dict(), wrong)
    with pytest.raises(InputError, match="^checkpoint: checkpoint .* does not match the network_def of the seg export"):
        export_bundle("seg", tmp_path / "out", checkpoint=wrong)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["wrong.pt"]


def _record(level: str, model: str, seed: int, robust: float) -> dict:
    figures = {"overall_auroc": 0.9, "robust_auroc": robust, "worst_pair_auroc": 0.5, "auroc_y0s0_y1s0": 0.8,
               "auroc_y0s0_y1s1": 0.7, "auroc_y0s1_y1s0": float("nan"), "auroc_y0s1_y1s1": 0.6}
    return {"level": level, "model": model, "score": "mean", "seed": seed, "n_test": 40,
            "run_key": f"{level}-{model}-s{seed}", "robust_auroc_ci": [robust - 0.1, robust + 0.05], **figures}


def test_study_records_give_the_figures(tmp_path):
    results = tmp_path / "results.json"
    results.write_text(json.dumps([_record("seg", "pixel", 0, 0.81), _record("seg", "pixel", 1, 0.83),
                                   _record("binary", "jtt", 0, 0.6)]))
    with pytest.raises(InputError, match=r"^results: 2 records of seg \(score mean\) \(seg-pixel-s0, seg-pixel-s1\)"):
        export_bundle("seg", tmp_path / "a", results=results)
    folder = export_bundle("seg", tmp_path / "a", results=results, run_key="seg-pixel-s1")
    metadata = json.loads((folder / "configs" / "metadata.json").read_text())
    assert metadata["eval_metrics"]["test_robust_auroc"] == 0.83
    assert metadata["eval_metrics"]["test_auroc_y0s1_y1s0"] is None  # NaN: undefined on that split
    assert "study run seg-pixel-s1 (seed 1, score mean, 40 test images" in metadata["description"]
    jtt = export_bundle("jtt", tmp_path / "jtt", results=results)  # the one jtt record
    assert json.loads((jtt / "configs" / "metadata.json").read_text())["eval_metrics"]["test_robust_auroc"] == 0.6
    with pytest.raises(InputError, match=r"^results: 0 records of george"):
        export_bundle("george", tmp_path / "george", results=results)


def test_cli_lists_prints_chains_and_exports(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(REPO_ROOT)
    assert main(["bundle", "list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split()[:4] == ["name", "bundle", "family", "model"]
    assert {line.split()[0] for line in lines[1:]} >= {"seg", "bbox", "classifier", "jtt", "george", "seg-ssl"}
    assert main(["bundle", "configs", "jtt", "--kind", "evaluate", "--dataset", "siim"]) == 0
    printed = ast.literal_eval(capsys.readouterr().out.strip())  # the list --config_file takes
    assert printed == [os.path.relpath(p, REPO_ROOT) for p in
                       config_files("jtt", "evaluate", "siim", bundles_dir=BUNDLES)]
    assert main(["bundle", "configs", "jtt", "--meta"]) == 0
    assert capsys.readouterr().out.strip() == "bundles/jtt_classification/configs/metadata.json"
    assert main(["bundle", "configs", "jtt", "--command"]) == 0
    assert capsys.readouterr().out.startswith("python -m monai.bundle run --config_file \"['bundles/common/configs/")

    out = tmp_path / "bundle"
    assert main(["bundle", "export", "seg", "--out", str(out), "--set", "epochs=3", "--set", "level=bbox"]) == 0
    assert f"bundle written to {out}" in capsys.readouterr().out
    train = merge_chain([out / "configs" / "train.yaml"])
    assert (train["epochs"], train["level"], train["bundle_root"]) == (3, "bbox", ".")
    assert main(["bundle", "export", "seg", "--out", str(out)]) == 2
    assert "spatialspec bundle: error: --out: " in capsys.readouterr().err
    assert main(["bundle", "export", "nope", "--out", str(tmp_path / "x")]) == 2
    assert "error: NAME: unknown method 'nope'" in capsys.readouterr().err
    assert main(["bundle", "export", "seg", "--out", str(tmp_path / "x"), "--set", "epochs"]) == 2
    assert "--set 'epochs' must look like ID=VALUE" in capsys.readouterr().err
    assert main(["bundle", "configs", "seg", "--kind", "inference", "--multi-gpu"]) == 2
    assert "--multi-gpu: applies to --kind train only" in capsys.readouterr().err


def test_merge_overlays_keeps_the_later_file(tmp_path):
    (tmp_path / "a.yaml").write_text("x: 1\n+l: [1]\ny: 2\n")
    (tmp_path / "b.yaml").write_text("x: 3\nz: 4\n")
    assert list(merge_overlays([tmp_path / "a.yaml", tmp_path / "b.yaml"]).items()) == \
        [("+l", [1]), ("y", 2), ("x", 3), ("z", 4)]
    (tmp_path / "c.yaml").write_text("+l: [2]\n")
    with pytest.raises(ValueError, match="extends an id another overlay extends too"):
        merge_overlays([tmp_path / "a.yaml", tmp_path / "c.yaml"])
    assert SHIPPED_CHECKPOINT.startswith("$os.path.join(@bundle_root")
