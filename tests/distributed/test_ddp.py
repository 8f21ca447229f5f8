"""multi_gpu_train.yaml on this CPU machine: ``torchrun --standalone --nproc_per_node=2`` with the gloo backend.

Equivalence with a 1-process run holds under these conditions (documented in docs/scale_out.md):
- the same global batch: 2 processes x batch 2 against 1 process x batch 4, on 20 training images (equal shards,
  no padding by the DistributedSampler);
- the same sample order: no shuffling. ``DistributedSampler(shuffle=False)`` gives rank r the images r, r + 2, ...;
  global step t then sees images 4t .. 4t + 3 on the two ranks together, exactly the 1-process batch t;
- per-sample normalisation: ``--network_def#norm instance``. SyncBatchNorm (used with GPUs) has no CPU kernel, and
  plain BatchNorm normalises each rank's half-batch with its own statistics, which changes the function computed.
DDP averages the two ranks' gradients of their mean losses, which is the gradient of the mean loss of the whole
batch, so the runs agree up to float summation order.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bundles"))
from test_bundles import REPO_ROOT, TINY, _env, _finish, _start, _train_args  # noqa: E402

TOLERANCE = 1e-4
EPOCHS = 2
METRICS = ("val_loss", "val_robust_auroc", "val_overall_auroc")


def _torchrun(args: list[str], log: Path) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "-m", "monai.bundle",
           *args]
    with open(log, "w") as out:
        proc = subprocess.run(cmd, cwd=REPO_ROOT, env=_env(), stdout=out, stderr=subprocess.STDOUT, timeout=400)
    return subprocess.CompletedProcess(cmd, proc.returncode, log.read_text(errors="replace"))


def _multi_gpu(args: list[str], bundle: str) -> list[str]:
    i = args.index("--config_file") + 1
    args[i] = repr([args[i], str(Path(args[i]).with_name("multi_gpu_train.yaml"))])
    return args


def _histories(db: Path) -> dict[str, list[tuple[int, float]]]:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{db}")
    runs = client.search_runs([client.get_experiment_by_name("ddp").experiment_id])
    assert len(runs) == 1, "rank 1 must not log a run of its own"
    run_id = runs[0].info.run_id
    return {m: sorted((x.step, x.value) for x in client.get_metric_history(run_id, m)) for m in METRICS}


def _tracked(out: Path, db: Path, *extra: str) -> list[str]:
    return _train_args("segmentation", "$" + repr(str(out)), "--tracking", "mlflow", "--tracking_uri",
                       f"sqlite:///{db}", "--experiment_name", "ddp", "--network_def#norm", "instance", *extra,
                       epochs=EPOCHS, synthetic=TINY)


@pytest.mark.slow
def test_two_process_gloo_matches_one_process(tmp_path):
    single = _start(_tracked(tmp_path / "one", tmp_path / "one.db", "--batch_size", "4",
                             "--train#dataloader#shuffle", "False"), tmp_path / "one.log")
    ddp = _torchrun(_multi_gpu(_tracked(tmp_path / "two", tmp_path / "two.db", "--batch_size", "2",
                                        "--train#sampler#shuffle", "False"), "segmentation"), tmp_path / "two.log")
    one = _finish(single)
    assert one.returncode == 0, one.describe()
    assert ddp.returncode == 0, ddp.stdout[-6000:]
    assert "gloo" in ddp.stdout or "nccl" not in ddp.stdout
    expected, got = _histories(tmp_path / "one.db"), _histories(tmp_path / "two.db")
    for name in METRICS:
        assert [s for s, _ in got[name]] == list(range(1, EPOCHS + 1)), got[name]
        np.testing.assert_allclose([v for _, v in got[name]], [v for _, v in expected[name]], rtol=0,
                                   atol=TOLERANCE, err_msg=name)
    # rank 0 alone writes the checkpoints
    assert (tmp_path / "two" / "models" / "model.pt").is_file()
    assert (tmp_path / "two" / "resume" / "latest.pt").is_file()


@pytest.mark.slow
@pytest.mark.parametrize("bundle", ["binary_classification", "jtt_classification", "george_classification",
                                    "bbox_segmentation"])
def test_multi_gpu_config_runs(bundle, tmp_path):
    args = _multi_gpu(_train_args(bundle, tmp_path / "out", "--batch_size", "2", synthetic=TINY), bundle)
    result = _torchrun(args, tmp_path / "ddp.log")
    assert result.returncode == 0, result.stdout[-6000:]
    assert (tmp_path / "out" / "models" / "model.pt").is_file()
    # each rank trained (stage 2) on half of the training set: 20 images (more with JTT's upsampling), batch 2 per
    # rank; the two-stage bundles' stage 1 (logged as erm_loss) runs on the whole set on every rank
    stage2 = "\n".join(line for line in result.stdout.splitlines() if "train_loss" in line)
    if bundle != "jtt_classification":
        assert "Iter: 5/5" in stage2 and "Iter: 6/" not in stage2, result.stdout[-3000:]


def test_every_bundle_ships_a_multi_gpu_config():
    from monai.bundle import ConfigParser

    for bundle in ("segmentation", "bbox_segmentation", "binary_classification", "jtt_classification",
                   "george_classification"):
        path = REPO_ROOT / "bundles" / bundle / "configs" / "multi_gpu_train.yaml"
        config = ConfigParser.load_config_file(str(path))
        assert "DistributedDataParallel" in config["network"]
        assert config["train#sampler"]["_target_"] == "DistributedSampler"
        assert config["train#dataloader#shuffle"] is False
        assert any("init_process_group" in item for item in config["initialize"])
        assert "nccl" in config["dist_backend"] and "gloo" in config["dist_backend"]
        assert config["run"][-1] == "$@train#trainer.run()"
        assert os.path.isfile(REPO_ROOT / "bundles" / bundle / "configs" / "train.yaml")
