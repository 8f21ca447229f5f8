"""ResumeHandler: atomic per-epoch checkpoints and a rerun that continues where a killed run stopped.

The fast tests train a tiny ignite loop in-process and compare an interrupted-then-resumed run against an uninterrupted
one; the slow tests run the segmentation bundle as a real subprocess that SIGKILLs itself in the middle of an epoch,
rerun the same command, and compare it with an uninterrupted run of the same seed (and two uninterrupted runs with
each other: determinism).
"""

from __future__ import annotations

import ast
import json
import os
import random
import signal
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from ignite.engine import Engine, Events
from monai.data import DataLoader, Dataset
from monai.engines import SupervisedEvaluator
from monai.handlers import MLFlowHandler, ValidationHandler

from spatialspec.errors import InputError, RunIdentityError
from spatialspec.handlers import ModelSelection, ResumeHandler, SelectionCheckpointSaver, load_resume_checkpoint
from spatialspec.handlers.checkpoint_writer import wait_for_checkpoint_writes
from spatialspec.handlers.resume import get_rng_state, set_rng_state
from spatialspec.identity import run_fingerprint
from spatialspec.losses import ChannelCrossEntropyLoss
from spatialspec.tracking import BufferedMLFlowHandler, reset_tracking_state
from tests.handlers import test_selection as scripted

# ---------------------------------------------------------------------------------------------------------------
# RNG state round trip
# ---------------------------------------------------------------------------------------------------------------


def _draws() -> tuple:
    return (random.random(), random.gauss(0, 1), np.random.rand(3).tolist(), np.random.randn(),
            torch.rand(3).tolist(), torch.randperm(10).tolist())


def test_rng_state_round_trip_through_weights_only_file(tmp_path):
    random.seed(3), np.random.seed(3), torch.manual_seed(3)
    random.gauss(0, 1), np.random.randn()  # leave cached Gaussians in both states
    path = tmp_path / "rng.pt"
    torch.save(get_rng_state(), path)
    expected = _draws()
    random.seed(99), np.random.seed(99), torch.manual_seed(99)
    assert _draws() != expected
    set_rng_state(torch.load(path, weights_only=True))
    assert _draws() == expected


# ---------------------------------------------------------------------------------------------------------------
# a tiny ignite training loop, interrupted and resumed in-process
# ---------------------------------------------------------------------------------------------------------------

X = torch.linspace(-1, 1, 24).reshape(-1, 1)
Y = 3 * X + 0.5


class _Loop:
    """A linear model trained with a shuffling DataLoader and dropout (both draw from torch's global RNG)."""

    def __init__(self, checkpoint: Path, epochs: int, stop_after: int | None = None, **resume: Any) -> None:
        self.model = torch.nn.Sequential(torch.nn.Linear(1, 8), torch.nn.Dropout(0.3), torch.nn.Linear(8, 1))
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=0.05)
        self.loader = torch.utils.data.DataLoader(list(zip(X, Y)), batch_size=5, shuffle=True)
        self.losses: list[float] = []

        def step(engine, batch):
            self.optimizer.zero_grad()
            loss = torch.nn.functional.mse_loss(self.model(batch[0]), batch[1])
            loss.backward()
            self.optimizer.step()
            self.losses.append(loss.item())
            return loss.item()

        self.engine = Engine(step)
        self.handler = ResumeHandler(checkpoint, {"model": self.model, "optimizer": self.optimizer}, **resume)
        self.handler.attach(self.engine)
        if stop_after is not None:  # the process dies after the checkpoint of epoch stop_after was written
            self.engine.add_event_handler(Events.EPOCH_COMPLETED(once=stop_after), _interrupt)
        self.epochs = epochs

    def run(self) -> None:
        self.engine.run(self.loader, max_epochs=self.epochs)


class _Interrupted(Exception):
    """Stands for a killed process in the in-process tests."""


def _interrupt(engine: Engine) -> None:
    raise _Interrupted


def _interrupted_run(loop: _Loop) -> None:
    with pytest.raises(_Interrupted):
        loop.run()
    # a process that dies of an exception finishes its queued checkpoint writes as the interpreter exits (the writer
    # thread is joined); the tests below read and rewrite the file directly
    wait_for_checkpoint_writes()


def _seed(seed: int = 0) -> None:
    random.seed(seed), np.random.seed(seed), torch.manual_seed(seed)


def test_resumed_loop_equals_uninterrupted(tmp_path):
    _seed()
    reference = _Loop(tmp_path / "a" / "latest.pt", epochs=4)
    reference.run()

    _seed()
    first = _Loop(tmp_path / "b" / "latest.pt", epochs=4, stop_after=2)
    _interrupted_run(first)
    assert load_resume_checkpoint(tmp_path / "b" / "latest.pt")["epoch"] == 2
    # a new process would start from fresh objects and a fresh seed: only the checkpoint carries the state over
    _seed(123)
    second = _Loop(tmp_path / "b" / "latest.pt", epochs=4)
    second.run()
    assert second.handler.resumed_from == 2
    assert second.engine.state.epoch == 4 and second.engine.state.iteration == reference.engine.state.iteration
    assert first.losses + second.losses == reference.losses  # same batches in the same order, bit for bit
    for p, q in zip(second.model.parameters(), reference.model.parameters()):
        assert torch.equal(p, q)

    # rerunning a finished run trains nothing
    _seed(7)
    third = _Loop(tmp_path / "b" / "latest.pt", epochs=4)
    third.run()
    assert third.losses == [] and third.handler.resumed_from == 4


def test_failed_write_keeps_previous_checkpoint(tmp_path, monkeypatch):
    _seed()
    loop = _Loop(tmp_path / "latest.pt", epochs=2, stop_after=1)
    _interrupted_run(loop)
    before = load_resume_checkpoint(tmp_path / "latest.pt")
    assert before["epoch"] == 1

    def crash(*args, **kwargs):  # the process dies between writing the temporary file and the rename
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(KeyboardInterrupt):
        loop.handler.save(loop.engine)
        loop.handler.wait()  # the write runs on the writer thread; its error comes back here
    monkeypatch.undo()
    after = load_resume_checkpoint(tmp_path / "latest.pt")
    assert after["epoch"] == 1
    for key, value in before["objects"]["model"].items():
        assert torch.equal(after["objects"]["model"][key], value)
    assert [p.name for p in tmp_path.iterdir()] == ["latest.pt"]  # no temporary file left behind


def test_run_stopped_early_is_finished(tmp_path):
    """Early stopping terminates the trainer: the checkpoint says so, and a rerun trains nothing more."""
    _seed()
    loop = _Loop(tmp_path / "latest.pt", epochs=5)
    loop.engine.add_event_handler(Events.EPOCH_COMPLETED(once=2), lambda e: e.terminate())
    loop.run()
    state = load_resume_checkpoint(tmp_path / "latest.pt")
    assert state["epoch"] == 2 and state["terminated"]
    again = _Loop(tmp_path / "latest.pt", epochs=5)
    again.run()
    assert again.losses == [] and again.handler.resumed_from == 2 and again.engine.state.epoch == 2


def _fingerprinted(checkpoint: Path, marker: Path, level: str, epochs: int = 2, enabled: bool = True) -> _Loop:
    return _Loop(checkpoint, epochs=epochs, enabled=enabled, fingerprint_file=marker,
                 fingerprint=run_fingerprint({"bundle": "test", "level": level}))


def test_resume_only_with_equal_fingerprint(tmp_path):
    checkpoint, marker = tmp_path / "resume" / "latest.pt", tmp_path / "models" / "fingerprint.json"
    _seed()
    first = _fingerprinted(checkpoint, marker, "seg")
    first.run()
    assert json.loads(marker.read_text())["fields"]["run_params"]["level"] == "seg"
    before = checkpoint.read_bytes(), marker.read_bytes()
    # another level in the same folder: refused when the handler is built, naming the field; nothing touched
    with pytest.raises(RunIdentityError, match=r"level: 'seg' -> 'binary'.*--resume False"):
        _fingerprinted(checkpoint, marker, "binary")
    assert (checkpoint.read_bytes(), marker.read_bytes()) == before
    # only the model's marker left (the checkpoint deleted): still refused, model.pt would be overwritten
    checkpoint.unlink()
    with pytest.raises(RunIdentityError, match="the model in"):
        _fingerprinted(checkpoint, marker, "binary")
    # the same settings resume; --resume False (enabled=False) starts over and claims the folder
    _seed()
    _fingerprinted(checkpoint, marker, "seg").run()
    _fingerprinted(checkpoint, marker, "binary", epochs=1, enabled=False).run()
    assert json.loads(marker.read_text())["fields"]["run_params"]["level"] == "binary"


def test_checkpoint_without_fingerprint_is_refused(tmp_path):
    _seed()
    _Loop(tmp_path / "latest.pt", epochs=1).run()  # a checkpoint from before run identity
    with pytest.raises(RunIdentityError, match="no fingerprint recorded"):
        _fingerprinted(tmp_path / "latest.pt", tmp_path / "fingerprint.json", "seg")


def test_checkpoint_beyond_max_epochs_is_refused(tmp_path):
    _seed()
    _Loop(tmp_path / "latest.pt", epochs=3).run()
    with pytest.raises(ValueError, match="max_epochs"):
        _Loop(tmp_path / "latest.pt", epochs=2).run()


def test_not_a_resume_checkpoint(tmp_path):
    torch.save({"weights": torch.zeros(2)}, tmp_path / "latest.pt")
    with pytest.raises(ValueError, match="latest.pt"):
        load_resume_checkpoint(tmp_path / "latest.pt")
    with pytest.raises(ValueError, match="save_dict"):
        ResumeHandler(tmp_path / "x.pt", {"model": object()})


# ---------------------------------------------------------------------------------------------------------------
# the model-selection record: model.pt stays the best of all epochs across a resume
# ---------------------------------------------------------------------------------------------------------------


class _SelectionLoop:
    """test_selection's scripted network (epoch e's weights give epoch e's logits; val_loss is smallest at epoch 2)
    under a MONAI evaluator whose SelectionCheckpointSaver keeps models/model.pt, with a ResumeHandler."""

    def __init__(self, root: Path, epochs: int = 4, stop_after: int | None = None, keep_record: bool = True) -> None:
        self.network = scripted.ScriptedNetwork()
        selection = ModelSelection("val_loss", loss=ChannelCrossEntropyLoss())
        self.saver = SelectionCheckpointSaver(str(root / "models"), {"model": self.network}, selection)
        data = [{"image": torch.tensor([float(i)]), "label": torch.tensor(scripted.Y[i]), "y": scripted.Y[i],
                 "s": scripted.S[i]} for i in range(8)]
        self.evaluator = SupervisedEvaluator(
            device=torch.device("cpu"), val_data_loader=DataLoader(Dataset(data), batch_size=4), network=self.network,
            postprocessing=scripted._score, key_val_metric=selection.key_metric(),
            metric_cmp_fn=selection.metric_cmp_fn, decollate=False, val_handlers=[self.saver])
        self.trainer = Engine(lambda engine, batch: None)
        self.trainer.add_event_handler(Events.EPOCH_COMPLETED,
                                       lambda e: self.network.tag.data.fill_(float(e.state.epoch)))
        ValidationHandler(interval=1, validator=self.evaluator).attach(self.trainer)
        save_dict = {"network": self.network, **({"selection": self.saver} if keep_record else {})}
        self.handler = ResumeHandler(root / "resume" / "latest.pt", save_dict, evaluator=self.evaluator)
        self.handler.attach(self.trainer)
        if stop_after is not None:
            self.trainer.add_event_handler(Events.EPOCH_COMPLETED(once=stop_after), _interrupt)
        self.epochs = epochs
        self.model_file = root / "models" / "model.pt"

    def run(self) -> None:
        self.trainer.run([0], max_epochs=self.epochs)

    def kept_epoch(self) -> int:
        return int(torch.load(self.model_file, weights_only=True)["tag"].item())


@pytest.mark.parametrize("keep_record", [True, False])
def test_resumed_run_keeps_the_best_model_of_all_epochs(tmp_path, keep_record):
    _interrupted_run(_SelectionLoop(tmp_path, stop_after=2, keep_record=keep_record))  # epochs 1, 2: best is 2
    resumed = _SelectionLoop(tmp_path, keep_record=keep_record)
    resumed.run()  # epochs 3, 4: both worse
    assert resumed.handler.resumed_from == 2 and resumed.evaluator.state.best_metric_epoch == 2
    if keep_record:
        assert resumed.kept_epoch() == 2
        assert resumed.saver.best_metric_epoch == 2
        assert resumed.saver.best_metric == pytest.approx(scripted._loss(scripted.Z[2]), rel=1e-5)
        record = load_resume_checkpoint(tmp_path / "resume" / "latest.pt")["objects"]["selection"]
        assert record["key_metric"] == "val_loss" and record["mode"] == "min" and record["best_metric_epoch"] == 2
    else:  # without the record the saver starts empty and keeps epoch 3: what the record is for
        assert resumed.kept_epoch() == 3


def _as_older_checkpoint(path: Path, copies: int = 1) -> None:
    """Rewrite a checkpoint in the layout of spatialspec before the selection record was a save_dict entry."""
    state = torch.load(path, weights_only=True)
    record = state["objects"].pop("selection")
    state["checkpoint_savers"] = [record["saved"]] * copies
    torch.save(state, path)


def test_older_checkpoint_maps_its_saver_record_onto_the_selection_entry(tmp_path):
    _interrupted_run(_SelectionLoop(tmp_path, stop_after=2))
    _as_older_checkpoint(tmp_path / "resume" / "latest.pt")
    resumed = _SelectionLoop(tmp_path)
    resumed.run()
    assert resumed.kept_epoch() == 2 and resumed.saver.best_metric_epoch == 2
    assert "checkpoint_savers" not in load_resume_checkpoint(tmp_path / "resume" / "latest.pt")


def test_older_checkpoint_with_several_saver_records_is_refused(tmp_path):
    _interrupted_run(_SelectionLoop(tmp_path, stop_after=2))
    _as_older_checkpoint(tmp_path / "resume" / "latest.pt", copies=2)
    with pytest.raises(InputError, match=r"older spatialspec with 2 checkpoint-saver records.*--resume False"):
        _SelectionLoop(tmp_path).run()
    assert _SelectionLoop(tmp_path, keep_record=False).kept_epoch() == 2  # model.pt untouched


def test_selection_record_of_another_rule_is_refused(tmp_path):
    saver = SelectionCheckpointSaver(str(tmp_path), {"model": torch.nn.Linear(1, 1)}, key_metric_name="val_loss",
                                     key_metric_mode="max")
    with pytest.raises(ValueError, match="mode 'min'"):
        saver.load_state_dict({"key_metric": "val_loss", "mode": "min", "saved": []})


# ---------------------------------------------------------------------------------------------------------------
# MLflow: the resumed attempt logs into the interrupted attempt's run
# ---------------------------------------------------------------------------------------------------------------

HANDLERS = {"buffered": BufferedMLFlowHandler, "monai": MLFlowHandler}


def _tracked(loop: _Loop, kind: str, uri: str, buffer: Path) -> tuple[Any, Any]:
    """Trainer and validator tracking handlers on ``loop`` (attached after its ResumeHandler, as MONAI's --tracking
    patch appends them), the validator a plain engine run after every epoch."""
    extra = {"buffer_file": buffer} if kind == "buffered" else {}
    common = {"tracking_uri": uri, "experiment_name": "resume", "run_name": "r", **extra}
    trainer_handler = HANDLERS[kind](output_transform=lambda loss: loss, tag_name="train_loss",
                                     close_on_complete=True, **common)
    trainer_handler.attach(loop.engine)
    evaluator = loop.handler.evaluator
    evaluator_handler = HANDLERS[kind](iteration_log=False, **common)
    evaluator_handler.attach(evaluator)
    loop.engine.add_event_handler(Events.EPOCH_COMPLETED, lambda e: evaluator.run([0]))
    return trainer_handler, evaluator_handler


def _plain_evaluator() -> Engine:
    evaluator = Engine(lambda engine, batch: None)
    evaluator.state.best_metric, evaluator.state.best_metric_epoch = -1.0, -1
    return evaluator


@pytest.mark.parametrize("kind", sorted(HANDLERS))
def test_resumed_run_continues_the_interrupted_mlflow_run(tmp_path, kind):
    from mlflow.tracking import MlflowClient

    reset_tracking_state()
    uri, buffer = f"sqlite:///{tmp_path / 'mlruns.db'}", tmp_path / "buffer.jsonl"
    checkpoint = tmp_path / "resume" / "latest.pt"
    _seed()
    first = _Loop(checkpoint, epochs=3, stop_after=1, evaluator=_plain_evaluator())
    trainer_handler, _ = _tracked(first, kind, uri, buffer)
    _interrupted_run(first)
    run_id = trainer_handler.cur_run.info.run_id
    assert load_resume_checkpoint(checkpoint)["mlflow_run_id"] == run_id

    # an older unfinished run of the same name: MONAI's lookup by name alone would log into it
    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name("resume").experiment_id
    decoy = client.create_run(experiment, run_name="r",
                              start_time=client.get_run(run_id).info.start_time - 60_000).info.run_id
    probe = HANDLERS[kind](tracking_uri=uri, experiment_name="resume", run_name="r")
    probe.start(Engine(lambda engine, batch: None))
    assert probe.cur_run.info.run_id == decoy
    reset_tracking_state()

    _seed(123)
    second = _Loop(checkpoint, epochs=3, evaluator=_plain_evaluator())
    _, evaluator_handler = _tracked(second, kind, uri, buffer)
    second.run()
    assert second.handler.resumed_from == 1
    assert evaluator_handler.cur_run.info.run_id == run_id
    assert load_resume_checkpoint(checkpoint)["mlflow_run_id"] == run_id
    assert client.get_run(run_id).info.status == "FINISHED"
    steps = sorted({m.step for m in client.get_metric_history(run_id, "train_loss")})
    assert steps == list(range(1, second.engine.state.iteration + 1))  # both attempts, one run
    assert client.get_metric_history(decoy, "train_loss") == []
    reset_tracking_state()


# ---------------------------------------------------------------------------------------------------------------
# the segmentation bundle, SIGKILLed in the middle of an epoch and run again
# ---------------------------------------------------------------------------------------------------------------

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bundles"))
from test_bundles import TINY, _finish, _start, _train_args  # noqa: E402

EPOCHS, BATCH = 3, 4  # TINY has 20 training images: 5 iterations per epoch
KILL_AT = 7  # iteration 2 of epoch 2
VAL_METRICS = ("val_loss", "val_robust_auroc", "val_overall_auroc")


def _kill_config(path: Path, marker: Path) -> Path:
    """An extra config file that SIGKILLs the process at iteration KILL_AT if ``marker`` exists (and removes it),
    so the first and the second attempt are the very same command."""
    hook = (f"$@train#trainer.add_event_handler(ignite.engine.Events.ITERATION_COMPLETED(once={KILL_AT}), "
            f"lambda e: os.path.exists({str(marker)!r}) and (os.remove({str(marker)!r}) or "
            f"os.kill(os.getpid(), signal.SIGKILL)))")
    path.write_text(f"+imports: ['$import signal', '$import ignite']\nrun:\n- {hook!r}\n- '$@train#trainer.run()'\n")
    return path


def _args(out: Path, db: Path, extra_config: Path | None = None) -> list[str]:
    return method_args("seg", out, db, kill_config=extra_config)


def _histories(db: Path) -> tuple[object, dict[str, list[tuple[int, float]]]]:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{db}")
    runs = client.search_runs([client.get_experiment_by_name("resume").experiment_id])
    assert len(runs) == 1, [r.info.run_id for r in runs]
    run = runs[0]
    return run, {name: sorted((m.step, m.value) for m in client.get_metric_history(run.info.run_id, name))
                 for name in VAL_METRICS}


def method_args(name: str, out: Path, db: Path, *extra: str, kill_config: Path | None = None) -> list[str]:
    """``monai.bundle run`` arguments training method ``name`` on TINY for EPOCHS epochs, tracked in ``db``, with
    ``extra`` settings and the SIGKILL config appended to its chain when given."""
    args = _train_args(name, "$" + repr(str(out)), "--batch_size", str(BATCH), *extra, "--tracking", "mlflow",
                       "--tracking_uri", f"sqlite:///{db}", "--experiment_name", "resume", "--run_name", "r",
                       epochs=EPOCHS, synthetic=TINY)
    # the config chain as a Python list, which MONAI's command line (fire) reads for any path
    i = args.index("--config_file") + 1
    chain = ast.literal_eval(args[i]) if args[i].startswith("[") else args[i].split(",")
    args[i] = repr([*chain, *([str(kill_config)] if kill_config is not None else [])])
    return args


def assert_method_resumes_as_if_uninterrupted(tmp_path: Path, name: str, *extra: str) -> None:
    """SIGKILL method ``name`` in the middle of epoch 2 and run the very same command again: one FINISHED MLflow run
    whose per-epoch validation metrics and best checkpoint equal an uninterrupted run's (run beside it)."""
    marker = tmp_path / "kill.marker"
    marker.touch()
    killed = method_args(name, tmp_path / "killed", tmp_path / "killed.db", *extra,
                         kill_config=_kill_config(tmp_path / "kill.yaml", marker))
    jobs = [_start(killed, tmp_path / "killed1.log"),
            _start(method_args(name, tmp_path / "ref", tmp_path / "ref.db", *extra), tmp_path / "ref.log")]
    first, ref = (_finish(j) for j in jobs)
    second = _finish(_start(killed, tmp_path / "killed2.log"))
    assert first.returncode == -signal.SIGKILL, first.describe()
    assert ref.returncode == 0 and second.returncode == 0, second.describe()
    assert "resumed from" in second.output, second.describe()
    run, resumed = _histories(tmp_path / "killed.db")
    _, expected = _histories(tmp_path / "ref.db")
    assert run.info.status == "FINISHED" and run.data.params["method"] == name
    for metric in VAL_METRICS:
        assert [step for step, _ in resumed[metric]] == list(range(1, EPOCHS + 1))
        np.testing.assert_allclose([v for _, v in resumed[metric]], [v for _, v in expected[metric]], rtol=0,
                                   atol=1e-6)
    best = torch.load(tmp_path / "killed" / "models" / "model.pt", weights_only=True)
    for key, value in torch.load(tmp_path / "ref" / "models" / "model.pt", weights_only=True).items():
        torch.testing.assert_close(best[key], value, rtol=0, atol=1e-6)


@pytest.fixture(scope="module")
def killed_and_references(tmp_path_factory):
    root = tmp_path_factory.mktemp("resume_bundle")
    marker = root / "kill.marker"
    marker.touch()
    killed = _args(root / "killed", root / "killed.db", _kill_config(root / "kill.yaml", marker))
    jobs = [_start(killed, root / "killed1.log"),
            _start(_args(root / "ref1", root / "ref1.db"), root / "ref1.log"),
            _start(_args(root / "ref2", root / "ref2.db"), root / "ref2.log")]
    first, ref1, ref2 = (_finish(j) for j in jobs)
    second = _finish(_start(killed, root / "killed2.log"))
    return root, first, second, ref1, ref2


@pytest.mark.slow
def test_sigkill_then_rerun_equals_uninterrupted(killed_and_references):
    root, first, second, ref, _ = killed_and_references
    assert first.returncode == -signal.SIGKILL, first.describe()
    assert ref.returncode == 0, ref.describe()
    assert second.returncode == 0, second.describe()
    assert "resumed from" in second.output and "epoch 1 of 3" in second.output, second.describe()

    run, resumed = _histories(root / "killed.db")
    ref_run, expected = _histories(root / "ref1.db")
    assert run.info.status == "FINISHED"
    for name in VAL_METRICS:
        steps = [step for step, _ in resumed[name]]
        assert steps == list(range(1, EPOCHS + 1)), f"{name}: epochs logged {steps} (one MLflow run, no duplicates)"
        np.testing.assert_allclose([v for _, v in resumed[name]], [v for _, v in expected[name]], rtol=0, atol=1e-6)

    final = load_resume_checkpoint(root / "killed" / "resume" / "latest.pt")
    reference = load_resume_checkpoint(root / "ref1" / "resume" / "latest.pt")
    assert final["epoch"] == reference["epoch"] == EPOCHS
    assert final["evaluator"] == reference["evaluator"]
    for key, value in reference["objects"]["network"].items():
        torch.testing.assert_close(final["objects"]["network"][key], value, rtol=0, atol=1e-6)
    best = torch.load(root / "killed" / "models" / "model.pt", weights_only=True)
    best_ref = torch.load(root / "ref1" / "models" / "model.pt", weights_only=True)
    for key, value in best_ref.items():
        torch.testing.assert_close(best[key], value, rtol=0, atol=1e-6)


@pytest.mark.slow
def test_same_seed_same_metrics(killed_and_references):
    root, *_, ref1, ref2 = killed_and_references
    assert ref1.returncode == 0 and ref2.returncode == 0, ref2.describe()
    _, first = _histories(root / "ref1.db")
    _, second = _histories(root / "ref2.db")
    assert first == second  # bit-identical on CPU
