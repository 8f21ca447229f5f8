"""The MONAI bundles driven the way a user drives them: ``python -m monai.bundle`` on the config chain of
:func:`spatialspec.registry.config_files` (the shared ``common/configs/train.yaml``, the model family's ``train.yaml``,
the method's overlays, then ``evaluate.yaml`` or ``inference.yaml``).

Every run uses tiny synthetic data and 1-2 epochs and writes only into pytest's ``tmp_path`` (``--output_dir``);
nothing is written into the repository's ``bundles/*/eval``. Overrides are passed as a subprocess argument list, so
``--synthetic "{'m': 20, ...}"`` reaches ``fire`` as one argument and is parsed as a Python dict literal.
"""

from __future__ import annotations

import csv
import math
import os
import re
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import pytest

from spatialspec import registry

REPO_ROOT = Path(__file__).resolve().parents[2]
BUNDLES_DIR = REPO_ROOT / "bundles"
# the levels and methods run end to end here, one per bundle (Seg-SSL and Seg-SPL: test_budget_configs.py; the other
# mask-guided classifiers: tests/guided)
NAMES = ("seg", "bbox", "classifier", "jtt", "george", "dfr", "rrr")
# the binary-label baselines train an ERM model first: one epoch of it in tests, and PCA for GEORGE's clustering
# (UMAP is covered by tests/robust/test_george.py)
TWO_STAGE_ARGS = {"jtt": ["--erm_epochs", "1"], "george": ["--erm_epochs", "1", "--reducer", "pca"]}
SCHEMA = BUNDLES_DIR / "schema" / "meta_schema_20240725.json"
SCHEMA_MD5 = "76e1add273836515d0bbb3bc71962474"
# tiny data: 16 x 16 images, 4 x 4 blocks; mu_y = 0.5 so that every split very likely holds both classes
TINY = {"m": 20, "n": 16, "a": 4, "b": 4, "n_val": 10, "n_test": 20, "mu_y": 0.5}
FIGURES = ("robust_auroc", "overall_auroc", "worst_pair_auroc", "auroc_y0s0_y1s0", "auroc_y0s0_y1s1",
           "auroc_y0s1_y1s0", "auroc_y0s1_y1s1")
SUBPROCESS_TIMEOUT = 300


def config_files(name: str, kind: str = "train", **options) -> list[Path]:
    """The configs of ``name`` merged in order (:func:`spatialspec.registry.config_files`), from this checkout."""
    return registry.config_files(name, kind, bundles_dir=BUNDLES_DIR, **options)


def meta_file(name: str) -> Path:
    """The ``metadata.json`` of ``name``'s bundle in this checkout."""
    return registry.meta_file(name, bundles_dir=BUNDLES_DIR)


def _rel(path: Path) -> str:
    """A path relative to the repository root, as the bundle README commands spell it."""
    return str(path.relative_to(REPO_ROOT))


def config_arg(name: str, kind: str = "train", **options) -> str:
    """``--config_file`` of ``python -m monai.bundle run``: the chain relative to the repository root, as a list
    literal that python-fire parses into a list (MONAI 1.6.1's ConfigWorkflow refuses a comma-joined string: it checks
    that the whole string names a file before splitting it)."""
    return repr([_rel(p) for p in config_files(name, kind, **options)])


def _env() -> dict[str, str]:
    env = dict(os.environ)
    # MLFlowHandler gives MLFLOW_TRACKING_URI priority over --tracking_uri: never let the caller's leak in
    env.pop("MLFLOW_TRACKING_URI", None)
    env.setdefault("PYTHONUNBUFFERED", "1")
    return env


class Result:
    """Return code and the combined stdout/stderr of one finished ``python -m monai.bundle`` process."""

    def __init__(self, args: Sequence[str], returncode: int, output: str) -> None:
        self.args, self.returncode, self.output = list(args), returncode, output

    def describe(self) -> str:
        return f"python -m monai.bundle {' '.join(self.args)}\nrc={self.returncode}\n--- output tail ---\n" + \
            self.output[-6000:]


def _start(args: Sequence[str], log: Path) -> tuple[subprocess.Popen, Path, list[str]]:
    args = [str(a) for a in args]
    with open(log, "w") as out:  # a file, not a pipe: concurrent processes never block on a full pipe
        proc = subprocess.Popen([sys.executable, "-m", "monai.bundle", *args], cwd=REPO_ROOT, env=_env(),
                                stdout=out, stderr=subprocess.STDOUT, text=True)
    return proc, log, args


def _finish(started: tuple[subprocess.Popen, Path, list[str]]) -> Result:
    proc, log, args = started
    try:
        proc.wait(timeout=SUBPROCESS_TIMEOUT)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    return Result(args, proc.returncode, log.read_text(errors="replace"))


def run_bundle(args: Sequence[str], log: Path) -> Result:
    return _finish(_start(args, log))


def run_concurrently(jobs: Sequence[tuple[Sequence[str], Path]]) -> list[Result]:
    """Start every job, then wait for all (the runs are independent; most of their time is importing MONAI)."""
    started = [_start(args, log) for args, log in jobs]
    return [_finish(s) for s in started]


def _train_args(name: str, output_dir: Path | str, *extra: str, epochs: int = 1, synthetic: dict | None = None,
                multi_gpu: bool = False) -> list[str]:
    """``run`` arguments training ``name`` (with ``multi_gpu``: its DDP chain, for ``torchrun``)."""
    args = ["run", "--config_file", config_arg(name, multi_gpu=multi_gpu), "--meta_file", _rel(meta_file(name)),
            "--epochs", str(epochs), "--output_dir", str(output_dir)]
    if synthetic is not None:
        args += ["--synthetic", repr(synthetic)]
    return args + TWO_STAGE_ARGS.get(name, []) + list(extra)


def _read_two_column_csv(path: Path) -> dict[str, str]:
    with open(path, newline="") as f:
        return {row[0]: row[1] for row in csv.reader(f) if row}


def _in_unit_interval_or_nan(value: float) -> bool:
    return math.isnan(value) or 0.0 <= value <= 1.0


# ---------------------------------------------------------------------------------------------------------------
# train -> evaluate -> inference, for every bundle
# ---------------------------------------------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("name", NAMES)
def test_train_evaluate_infer(name, tmp_path):
    out = tmp_path / "out"
    synthetic = ["--synthetic", repr(TINY)]

    train = run_bundle(_train_args(name, out, synthetic=TINY), tmp_path / "train.log")
    assert train.returncode == 0, train.describe()
    ckpt = out / "models" / "model.pt"
    assert ckpt.is_file(), f"no checkpoint at {ckpt}\n{train.describe()}"

    # evaluate and inference only read the checkpoint and write different files: run them side by side
    evaluate_args = ["run", "--config_file", config_arg(name, "evaluate"), "--meta_file", _rel(meta_file(name)),
                     "--output_dir", str(out), *synthetic]
    infer_args = ["run", "--config_file", config_arg(name, "inference"), "--meta_file", _rel(meta_file(name)),
                  "--output_dir", str(out), *synthetic]
    evaluate, infer = run_concurrently([(evaluate_args, tmp_path / "evaluate.log"),
                                        (infer_args, tmp_path / "inference.log")])

    assert evaluate.returncode == 0, evaluate.describe()
    metrics_csv = out / "metrics.csv"
    assert metrics_csv.is_file(), evaluate.describe()
    metrics = _read_two_column_csv(metrics_csv)
    assert "test_loss" in metrics
    # with this seed every (y, s) subgroup is in the test split, so no figure may be NaN
    from spatialspec.data import SyntheticParams, generate_split

    subgroups = {(d["y"], d["s"]) for d in generate_split(SyntheticParams(**TINY), "test", 0)}
    for figure in FIGURES:
        metric = f"test_{figure}"
        assert metric in metrics, f"{metric} missing from {metrics_csv}: {sorted(metrics)}"
        value = float(metrics[metric])
        assert _in_unit_interval_or_nan(value), f"{metric} = {metrics[metric]}"
        if len(subgroups) == 4:
            assert not math.isnan(value), f"{metric} is NaN although every subgroup is in the test split"
    assert math.isfinite(float(metrics["test_loss"]))

    assert infer.returncode == 0, infer.describe()
    scores_csv = out / "scores.csv"
    assert scores_csv.is_file(), infer.describe()
    with open(scores_csv, newline="") as f:
        rows = [row for row in csv.reader(f) if row]
    assert len(rows) == TINY["n_test"], f"{len(rows)} rows in {scores_csv}, expected one per test image"
    images = [row[0] for row in rows]
    assert len(set(images)) == len(images), "an image appears twice in scores.csv"
    assert all(image.startswith("test_") for image in images)
    for row in rows:
        assert len(row) == 2 and 0.0 <= float(row[1]) <= 1.0, row
    if name in TWO_STAGE_ARGS:  # the first stage's output, read by the second
        assert (out / ("jtt_error_set.json" if name == "jtt" else "george_groups.json")).is_file()
    if registry.method(name).family == "pixelwise":
        assert len(list((out / "predictions").glob("*_seg.nii.gz"))) == TINY["n_test"]


# ---------------------------------------------------------------------------------------------------------------
# metadata against MONAI's schema (offline: the schema is in the repository and its hash is checked)
# ---------------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def verified_metadata(tmp_path_factory) -> dict[str, Result]:
    logs = tmp_path_factory.mktemp("verify_metadata")
    jobs = [(["verify_metadata", "--meta_file", _rel(meta_file(n)), "--filepath", _rel(SCHEMA),
              "--hash_val", SCHEMA_MD5], logs / f"{n}.log") for n in NAMES]
    return dict(zip(NAMES, run_concurrently(jobs)))


@pytest.mark.slow
@pytest.mark.parametrize("name", NAMES)
def test_verify_metadata(name, verified_metadata):
    result = verified_metadata[name]
    assert result.returncode == 0, result.describe()
    assert "metadata is verified with no error" in result.output
    # the schema was found locally: nothing was downloaded
    assert "skipped downloading" in result.output, result.describe()


# ---------------------------------------------------------------------------------------------------------------
# MONAI bundle properties and the standard ids (in-process)
# ---------------------------------------------------------------------------------------------------------------

CONFIG_SETS = {
    # kind -> workflow type: evaluate.yaml is merged on the train chain and keeps its train-shaped layout
    # (validate#evaluator, no top-level evaluator/dataset/inferer), so it is checked as a "train" workflow;
    # inference.yaml, merged on the train chain too, is the "infer" workflow.
    "train": "train",
    "evaluate": "train",
    "inference": "infer",
}


def _workflow(name: str, kind: str, workflow_type: str | None, **overrides):
    from monai.bundle import ConfigWorkflow

    return ConfigWorkflow(config_file=[str(f) for f in config_files(name, kind)], meta_file=str(meta_file(name)),
                          workflow_type=workflow_type, logging_file=False, **overrides)


@pytest.mark.parametrize("kind", sorted(CONFIG_SETS))
@pytest.mark.parametrize("name", NAMES)
def test_check_properties(name, kind, tmp_path):
    workflow_type = CONFIG_SETS[kind]
    workflow = _workflow(name, kind, workflow_type, synthetic=TINY, output_dir=str(tmp_path))
    workflow.initialize()  # MONAI resolves the properties only after initialize()
    missing = workflow.check_properties()
    assert missing == [] or missing is None, f"{name} {kind} ({workflow_type}) misses properties {missing}"
    workflow.finalize()


@pytest.mark.parametrize("name", NAMES)
def test_evaluate_config_is_not_an_infer_workflow(name):
    """Documents, rather than hides, what evaluate.yaml lacks to be checked as an "infer" workflow.

    MONAI's InferProperties require top-level ``dataset``, ``evaluator`` and ``inferer``; the merged evaluate
    config keeps them under ``validate#`` (it reuses train.yaml's validator). ``ConfigWorkflow.check_properties``
    raises a KeyError for a missing *required* id instead of listing it, so the ids are listed here directly.
    """
    from monai.bundle.properties import InferProperties

    workflow = _workflow(name, "evaluate", "infer")
    missing = sorted(prop_name for prop_name, prop in InferProperties.items()
                     if prop.get("required") and prop["id"] not in workflow.parser)
    assert missing == ["dataset", "evaluator", "inferer"]
    workflow.initialize()
    with pytest.raises(KeyError, match="dataset"):
        workflow.check_properties()


@pytest.mark.parametrize("name", NAMES)
def test_standard_ids(name):
    workflow = _workflow(name, "train", "train")
    for id_ in ("train#trainer", "train#handlers", "validate#evaluator", "validate#handlers"):
        assert workflow.parser.get(id_) is not None, f"the train configs of {name} have no '{id_}'"
    # the ids MONAI's --tracking patch appends its MLFlowHandler to are lists
    assert isinstance(workflow.parser.get("train#handlers"), list)
    assert isinstance(workflow.parser.get("validate#handlers"), list)


@pytest.mark.parametrize("name", sorted(registry.METHODS))
def test_synthetic_data_takes_the_fast_paths(name, tmp_path):
    """On the built-in synthetic data every method fills its caches in the calling thread, loads plain tensors,
    replays the validation batches and (where its training set is the cache itself, not a wrapper a first stage
    changes) gathers the shuffled training batches from one collation (issue 17): checks the wiring, not the speed
    (tests/data/test_caching.py checks that the samples and batches are MONAI's)."""
    import torch
    from monai.data import MetaTensor

    from spatialspec.data import ReplayDataLoader, SerialCacheDataset

    workflow = _workflow(name, "train", None, synthetic=TINY, output_dir=str(tmp_path))
    train, validate = (workflow.parser.get_parsed_content(f"{part}#dataset") for part in ("train", "validate"))
    assert isinstance(train, SerialCacheDataset) and isinstance(validate, SerialCacheDataset)
    assert not isinstance(train[0]["image"], MetaTensor)
    loader = workflow.parser.get_parsed_content("validate#dataloader")
    assert isinstance(loader, ReplayDataLoader) and loader.replays
    first, again = list(loader), list(loader)
    assert len(first) == len(again) > 0
    assert all(torch.equal(a["image"], b["image"]) for a, b in zip(first, again, strict=True))
    shuffled = workflow.parser.get_parsed_content("train#dataloader")
    assert isinstance(shuffled, ReplayDataLoader) and not shuffled.replays
    assert shuffled.gathers == (not registry.method(name).two_stage)


# ---------------------------------------------------------------------------------------------------------------
# MLflow tracking
# ---------------------------------------------------------------------------------------------------------------


class _TrackingURI:
    """Point ``mlflow`` at ``uri`` for the block, then restore the global URI and the environment variable (which
    ``mlflow.set_tracking_uri`` also sets and MLFlowHandler would otherwise pick up in later tests)."""

    def __init__(self, uri: str) -> None:
        self.uri = uri

    def __enter__(self):
        import mlflow

        self.previous_env = os.environ.get("MLFLOW_TRACKING_URI")
        mlflow.set_tracking_uri(self.uri)
        return self

    def __exit__(self, *exc):
        import mlflow

        mlflow.set_tracking_uri(None)
        if self.previous_env is None:
            os.environ.pop("MLFLOW_TRACKING_URI", None)
        else:
            os.environ["MLFLOW_TRACKING_URI"] = self.previous_env
        return False


@pytest.mark.slow
def test_mlflow_tracking(tmp_path):
    import mlflow
    from mlflow.tracking import MlflowClient

    out = tmp_path / "out"
    uri = "sqlite:///" + str(tmp_path.resolve()) + "/mlruns.db"
    experiment, run_name = "spatialspec_test_experiment", "tiny_seg_run"
    # output_dir is given as an expression: MONAI's tracking patch derives the executed-config artifact path by
    # string concatenation on the *unresolved* output_dir (see test_mlflow_config_artifact_with_plain_output_dir)
    args = _train_args("seg", "$" + repr(str(out)), "--tracking", "mlflow", "--tracking_uri", uri,
                       "--experiment_name", experiment, "--run_name", run_name, epochs=2, synthetic=TINY)
    result = run_bundle(args, tmp_path / "train.log")
    assert result.returncode == 0, result.describe()
    assert (out / "models" / "model.pt").is_file()

    with _TrackingURI(uri):
        runs = mlflow.search_runs(experiment_names=[experiment])
        assert len(runs) == 1, runs
        runs = runs[runs["tags.mlflow.runName"] == run_name]
        assert len(runs) == 1, f"expected one run named {run_name!r}"
        run_id = runs["run_id"].iloc[0]
        client = MlflowClient(tracking_uri=uri)
        run = client.get_run(run_id)
        assert run.info.status == "FINISHED"

        metrics = run.data.metrics
        for name in ("val_robust_auroc", "val_overall_auroc", "val_worst_pair_auroc", "val_loss", "train_loss"):
            assert name in metrics, f"{name} not logged: {sorted(metrics)}"
        for name in ("val_robust_auroc", "val_overall_auroc"):
            history = client.get_metric_history(run_id, name)
            assert sorted(m.step for m in history) == [1, 2], [(m.step, m.value) for m in history]
            assert all(_in_unit_interval_or_nan(m.value) for m in history)

        params = run.data.params
        # logged by spatialspec.handlers.attach_run_params from the bundle's run_params
        assert params["level"] == "seg"
        assert params["seed"] == "0"
        assert params["bundle"] == "segmentation"
        assert params["score"] == "mean"
        assert params["epochs"] == "2"
        assert params["datalist"] == "none"
        assert params["synthetic.m"] == str(TINY["m"]) and params["synthetic.n"] == str(TINY["n"])
        assert float(params["synthetic.mu_y"]) == TINY["mu_y"]

        artifacts = client.list_artifacts(run_id)
        assert len(artifacts) >= 1, "no artifact logged (expected the executed config json)"
        assert any(a.path.endswith(".json") for a in artifacts), [a.path for a in artifacts]


@pytest.mark.xfail(strict=True, reason=(
    "MONAI 1.6.1 ConfigWorkflow.patch_bundle_tracking builds save_execute_config as "
    "parser['output_dir'] + \" + '/config_<time>.json'\", which is only an expression when output_dir is one; "
    "with a plain --output_dir /path the MLFlowHandler artifact path is the literal string "
    "\"/path + '/config_<time>.json'\" and the executed config is silently not logged"))
def test_mlflow_config_artifact_with_plain_output_dir(tmp_path):
    uri = "sqlite:///" + str(tmp_path.resolve()) + "/mlruns.db"
    workflow = _workflow("seg", "train", "train", tracking="mlflow", output_dir=str(tmp_path),
                         tracking_uri=uri, synthetic=TINY)
    exported = list(tmp_path.glob("config_*.json"))
    assert len(exported) == 1  # the executed config is written where the user asked...
    artifact = workflow.parser.get_parsed_content("save_execute_config")
    assert os.path.isfile(str(artifact)), f"MLFlowHandler would log artifacts from {artifact!r}"  # ...not found


# ---------------------------------------------------------------------------------------------------------------
# a datalist instead of the built-in synthetic data, and a bad override
# ---------------------------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_train_from_datalist(tmp_path):
    from spatialspec.data import SyntheticParams, write_synthetic_datalist

    datalist = write_synthetic_datalist(tmp_path / "data",
                                        SyntheticParams(m=12, n=16, a=4, b=4, n_val=6, n_test=8))
    out = tmp_path / "out"
    result = run_bundle(_train_args("seg", out, "--datalist", str(datalist), "--batch_size", "4"),
                        tmp_path / "train.log")
    assert result.returncode == 0, result.describe()
    assert (out / "models" / "model.pt").is_file()
    # the datalist's 12 training images were read (3 batches of 4), not the 150 built-in synthetic ones (38)
    assert re.search(r"Iter: 3/3\b", result.output), result.describe()


@pytest.mark.slow
def test_bad_level_override_fails_clearly(tmp_path):
    out = tmp_path / "out"
    result = run_bundle(_train_args("seg", out, "--level", "nonsense", synthetic=TINY),
                        tmp_path / "train.log")
    assert result.returncode != 0, result.describe()
    # the error itself (not just the echoed input summary) names the bad value
    assert re.search(r"Error: .*'nonsense'", result.output), result.describe()
    assert not (out / "models" / "model.pt").exists()


@pytest.mark.parametrize("name", NAMES)
def test_inference_network_matches_training(name):
    """The inference chain loads the train chain's checkpoint strictly: both must build the same network, also with
    a data set config (ISIC: 3 input channels, 3 classes for the pixel-wise models) and at paper scale."""
    from monai.bundle import ConfigParser

    for options in ({}, {"dataset": "isic", "paper_scale": True}):
        train, infer = ConfigParser(), ConfigParser()
        train.read_config([str(f) for f in config_files(name, **options)])
        infer.read_config([str(f) for f in config_files(name, "inference", **options)])
        assert infer.get("network_def") == train.get("network_def"), options
        for id_ in ("in_channels", "num_classes"):
            assert infer.get_parsed_content(id_) == train.get_parsed_content(id_), (id_, options)
    shapes = [{k: v.shape for k, v in p.get_parsed_content("network_def").state_dict().items()}
              for p in (_workflow(name, "train", None).parser, _workflow(name, "inference", None).parser)]
    assert shapes[0] == shapes[1]
