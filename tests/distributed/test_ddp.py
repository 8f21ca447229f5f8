"""The DDP chain of every level and method (``spatialspec.registry.config_files(name, multi_gpu=True)``, which merges
bundles/common/configs/multi_gpu_train.yaml last) on this CPU machine: ``torchrun --standalone --nproc_per_node=2``
with the gloo backend, and in-process in a one-process group.

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

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from spatialspec import registry
from tests.ports import free_port

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bundles"))
from test_bundles import REPO_ROOT, TINY, _env, _finish, _start, _train_args, config_files, meta_file  # noqa: E402

TOLERANCE = 1e-4
EPOCHS = 2
METRICS = ("val_loss", "val_robust_auroc", "val_overall_auroc")


def _torchrun(args: list[str], log: Path) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "-m", "monai.bundle",
           *args]
    with open(log, "w") as out:
        proc = subprocess.run(cmd, cwd=REPO_ROOT, env=_env(), stdout=out, stderr=subprocess.STDOUT, timeout=400)
    return subprocess.CompletedProcess(cmd, proc.returncode, log.read_text(errors="replace"))


def _histories(db: Path) -> dict[str, list[tuple[int, float]]]:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{db}")
    runs = client.search_runs([client.get_experiment_by_name("ddp").experiment_id])
    assert len(runs) == 1, "rank 1 must not log a run of its own"
    run_id = runs[0].info.run_id
    return {m: sorted((x.step, x.value) for x in client.get_metric_history(run_id, m)) for m in METRICS}


def _tracked(out: Path, db: Path, *extra: str, multi_gpu: bool = False) -> list[str]:
    return _train_args("seg", "$" + repr(str(out)), "--tracking", "mlflow", "--tracking_uri", f"sqlite:///{db}",
                       "--experiment_name", "ddp", "--network_def#norm", "instance", *extra, epochs=EPOCHS,
                       synthetic=TINY, multi_gpu=multi_gpu)


@pytest.mark.slow
def test_two_process_gloo_matches_one_process(tmp_path):
    single = _start(_tracked(tmp_path / "one", tmp_path / "one.db", "--batch_size", "4",
                             "--train#dataloader#shuffle", "False"), tmp_path / "one.log")
    ddp = _torchrun(_tracked(tmp_path / "two", tmp_path / "two.db", "--batch_size", "2", "--train#sampler#shuffle",
                             "False", multi_gpu=True), tmp_path / "two.log")
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
@pytest.mark.parametrize("name", ["classifier", "jtt", "george", "bbox", "seg-ssl", "seg-spl"])
def test_multi_gpu_config_runs(name, tmp_path):
    extra = ["--location_labels", "10"] if name == "seg-ssl" else []
    args = _train_args(name, tmp_path / "out", "--batch_size", "2", *extra, synthetic=TINY, multi_gpu=True)
    result = _torchrun(args, tmp_path / "ddp.log")
    assert result.returncode == 0, result.stdout[-6000:]
    assert (tmp_path / "out" / "models" / "model.pt").is_file()
    # each rank trained (the final stage) on half of the training set: 20 images (more with JTT's upsampling), batch
    # 2 per rank; the two-stage methods' first stage (logged as erm_loss / initial_loss) runs on every rank alone
    stage2 = "\n".join(line for line in result.stdout.splitlines() if "train_loss" in line)
    if name != "jtt":
        assert "Iter: 5/5" in stage2 and "Iter: 6/" not in stage2, result.stdout[-3000:]


@pytest.fixture
def one_process_group(monkeypatch):
    """torchrun's environment for a group of one process (rank 0 of 1), so that the DDP chain joins it in-process."""
    import torch.distributed as dist

    for key, value in {"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(free_port()), "RANK": "0", "WORLD_SIZE": "1",
                       "LOCAL_RANK": "0", "LOCAL_WORLD_SIZE": "1"}.items():
        monkeypatch.setenv(key, value)
    assert not dist.is_initialized()
    yield
    if dist.is_initialized():  # a failed test must not leave its group (nor ignite's view of it) to the next one
        from spatialspec.distributed import destroy_distributed

        destroy_distributed()


@pytest.mark.parametrize("name", list(registry.METHODS))
def test_every_method_has_a_multi_gpu_config(name, one_process_group, tmp_path):
    """Every chain merges the one DDP config last: initialize joins the process group (gloo on the CPU), the network
    is wrapped in DistributedDataParallel, the final stage reads its data set through a DistributedSampler (so the
    loader does not shuffle), and finalize leaves the group."""
    import torch
    import torch.distributed as dist
    from monai.bundle import ConfigWorkflow
    from monai.data import DistributedSampler

    files = config_files(name, multi_gpu=True)
    assert files[-1] == config_files(name)[0].with_name("multi_gpu_train.yaml")
    assert files[:-1] == config_files(name)
    workflow = ConfigWorkflow(config_file=[str(f) for f in files], meta_file=str(meta_file(name)), logging_file=False,
                              workflow_type="train", output_dir=str(tmp_path), synthetic=TINY, batch_size=2)
    parser = workflow.parser
    # the final stage trains data-parallel, and the loader leaves the shuffling to the sampler
    assert parser["run"][-1] == "$@train#trainer.run()" and parser["train#dataloader#shuffle"] is False
    workflow.initialize()
    backend = "nccl" if torch.cuda.is_available() else "gloo"
    assert dist.is_initialized() and dist.get_backend() == backend and dist.get_world_size() == 1
    assert workflow.check_properties() == []
    assert isinstance(parser.get_parsed_content("network"), torch.nn.parallel.DistributedDataParallel)
    loader, sampler = parser.get_parsed_content("train#dataloader"), parser.get_parsed_content("train#sampler")
    assert isinstance(sampler, DistributedSampler) and loader.sampler is sampler
    # the sampler shards what the final stage trains on (JTT's upsampled, GEORGE's grouped, Seg-SSL's pseudo-labelled
    # data set)
    assert loader.sampler.dataset is loader.dataset
    workflow.finalize()
    assert not dist.is_initialized()
    # ignite's handlers adopted the group; finalize reset that too, so later engines in this process run serially
    import ignite.distributed as idist

    assert idist.model_name() == "serial" and idist.get_rank() == 0
