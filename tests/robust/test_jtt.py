"""JTT's error set and upsampled training set on a hand-made set."""

from __future__ import annotations

import numpy as np
import pytest

from spatialspec.robust import error_set, upsample, upsampling_factor


def test_error_set():
    assert error_set([1, 0, 1, 1, 0], [1, 1, 0, 1, 0]).tolist() == [1, 2]
    assert error_set(np.array([0, 0]), np.array([0, 0])).tolist() == []
    with pytest.raises(ValueError, match="same length"):
        error_set([0, 1], [0])


@pytest.mark.parametrize("n, e, lam, expected", [(10, 2, 3, 3), (10, 2, -1, 3), (10, 3, -1, 1), (10, 5, -1, 0),
                                                 (10, 0, -1, 0), (10, 9, -1, 0)])
def test_upsampling_factor(n, e, lam, expected):
    # balanced: int((N - |E|) / |E|) - 1, e.g. int(8 / 2) - 1 = 3 and int(7 / 3) - 1 = 1
    assert upsampling_factor(n, e, lam) == expected


def test_upsample_repeats_errors():
    data = ["a", "b", "c", "d", "e", "f", "g", "h", "i", "j"]
    out = upsample(data, [1, 4], lambda_up=2)
    assert len(out) == 10 + 2 * 2
    assert out[:10] == data
    assert out.count("b") == 3 and out.count("e") == 3 and out.count("a") == 1
    balanced = upsample(data, [1, 4])  # lambda = int(8 / 2) - 1 = 3
    assert balanced.count("b") == 4


def test_upsample_empty_error_set_warns_and_keeps_data():
    with pytest.warns(RuntimeWarning, match="error set is empty"):
        assert upsample([1, 2, 3], []) == [1, 2, 3]


def test_upsample_invalid():
    with pytest.raises(ValueError, match="error indices"):
        upsample([1, 2], [5])
    with pytest.raises(ValueError, match="lambda_up"):
        upsampling_factor(4, 1, -2)


# ---------------------------------------------------------------------------------------------------------------
# upsample_indices, the error-set file and UpsampledDataset (JTT steps 2-3)
# ---------------------------------------------------------------------------------------------------------------

import json  # noqa: E402
import warnings  # noqa: E402

import torch  # noqa: E402
from ignite.engine import Engine, Events  # noqa: E402
from torch.utils.data import DataLoader  # noqa: E402

from spatialspec.robust import UpsampledDataset, load_error_set, save_error_set, upsample_indices  # noqa: E402


@pytest.mark.parametrize("lam, expected", [
    # N = 8, E = {2, 5}: balanced lambda = int((8 - 2) / 2) - 1 = 2
    (-1, [0, 1, 2, 3, 4, 5, 6, 7, 2, 2, 5, 5]),
    (0, [0, 1, 2, 3, 4, 5, 6, 7]),
    (2, [0, 1, 2, 3, 4, 5, 6, 7, 2, 2, 5, 5]),
    (1, [0, 1, 2, 3, 4, 5, 6, 7, 2, 5]),
])
def test_upsample_indices_by_hand(lam, expected):
    # unsorted, with a duplicate: the error set is a set
    out = upsample_indices(8, [5, 2, 5], lambda_up=lam)
    assert out.tolist() == expected
    counts = np.bincount(out, minlength=8)
    copies = 1 + (2 if lam == -1 else lam)
    assert counts.tolist() == [1, 1, copies, 1, 1, copies, 1, 1]


def test_upsample_indices_balanced_other_ratio():
    # N = 11, E = {0, 10, 3}: int(8 / 3) - 1 = 1 extra copy each, appended in sorted order
    assert upsample_indices(11, np.array([10, 0, 3])).tolist() == list(range(11)) + [0, 3, 10]


def test_upsample_indices_empty_warns_and_is_identity():
    with pytest.warns(RuntimeWarning, match="error set is empty"):
        assert upsample_indices(5, [], lambda_up=3).tolist() == [0, 1, 2, 3, 4]
    with pytest.warns(RuntimeWarning, match="error set is empty"):
        assert upsample_indices(4, np.array([], dtype=np.int64)).tolist() == [0, 1, 2, 3]


@pytest.mark.parametrize("errors", [[5], [-1], [0, 7]])
def test_upsample_indices_out_of_range(errors):
    with pytest.raises(ValueError, match=r"error indices must lie in \[0, 5\)"):
        upsample_indices(5, errors)


def test_error_set_file_round_trip(tmp_path):
    path = tmp_path / "stage1" / "errors.json"  # the folder is created
    written = save_error_set(path, np.array([7, 1, 4]), 10, lambda_up=-1, note="x")
    assert written == path and path.is_file()
    record = json.loads(path.read_text())
    assert record["n_samples"] == 10 and record["n_errors"] == 3 and record["errors"] == [1, 4, 7]
    assert record["lambda_up"] == -1 and record["note"] == "x"
    assert load_error_set(path).tolist() == [1, 4, 7]
    assert load_error_set(path, n_samples=10).tolist() == [1, 4, 7]
    assert load_error_set(str(path)).dtype == np.int64
    assert not [p for p in path.parent.iterdir() if p.name != "errors.json"]  # no temporary file left


def test_load_error_set_missing_file(tmp_path):
    path = tmp_path / "nope.json"
    with pytest.raises(FileNotFoundError, match="nope.json"):
        load_error_set(path)


@pytest.mark.parametrize("content", ["{not json", json.dumps({"n_samples": 3}), json.dumps({"errors": [1]}),
                                     json.dumps([1, 2]), json.dumps({"n_samples": 3, "errors": ["a"]}),
                                     json.dumps({"n_samples": None, "errors": [1]})])
def test_load_error_set_malformed(tmp_path, content):
    path = tmp_path / "bad_errors.json"
    path.write_text(content)
    with pytest.raises(ValueError, match="bad_errors.json"):
        load_error_set(path)


def test_load_error_set_wrong_n_samples(tmp_path):
    path = save_error_set(tmp_path / "errs.json", [0, 2], 5)
    with pytest.raises(ValueError, match=r"errs\.json.* 5 training samples.* 6"):
        load_error_set(path, n_samples=6)


def _base(n: int = 10) -> list[dict]:
    return [{"image": torch.full((2,), float(i)), "index": i} for i in range(n)]


def test_upsampled_dataset_explicit_indices():
    base = _base()
    ds = UpsampledDataset(base, [6, 1], lambda_up=2)
    expected = list(range(10)) + [1, 1, 6, 6]
    assert len(ds) == 14 and ds.lambda_up == 2 and ds.errors.tolist() == [1, 6]
    assert [ds[i]["index"] for i in range(len(ds))] == expected
    assert [item["index"] for item in ds.__getitems__([13, 0, 10])] == [6, 0, 1]
    # through a DataLoader with batches (torch fetches them with __getitems__)
    seen = [b["index"].tolist() for b in DataLoader(ds, batch_size=4, shuffle=False)]
    assert [len(b) for b in seen] == [4, 4, 4, 2]
    assert sum(seen, []) == expected
    images = torch.cat([b["image"] for b in DataLoader(ds, batch_size=5)])
    assert torch.equal(images, torch.stack([base[i]["image"] for i in expected]))


def test_upsampled_dataset_balanced_and_empty():
    ds = UpsampledDataset(_base(), [3])  # balanced: int(9 / 1) - 1 = 8 extra copies
    assert ds.lambda_up == 8 and len(ds) == 18 and [ds[i]["index"] for i in range(10, 18)] == [3] * 8
    with pytest.warns(RuntimeWarning, match="error set is empty"):
        empty = UpsampledDataset(_base(4), [])
    assert len(empty) == 4 and [empty[i]["index"] for i in range(4)] == [0, 1, 2, 3]


def test_upsampled_dataset_file_written_later(tmp_path):
    path = tmp_path / "errors.json"
    ds = UpsampledDataset(_base(), path, lambda_up=-1)
    assert len(ds) == 10
    with pytest.raises(FileNotFoundError, match="errors.json"):
        ds[0]
    with pytest.raises(FileNotFoundError, match="errors.json"):
        ds.__getitems__([0, 1])
    save_error_set(path, [2, 9], 10)
    ds.reload()  # balanced: int(8 / 2) - 1 = 3 extra copies each
    assert len(ds) == 16 and ds.lambda_up == 3
    assert [ds[i]["index"] for i in range(16)] == list(range(10)) + [2, 2, 2, 9, 9, 9]
    # the first stage may rewrite the file: reload follows it
    save_error_set(path, [0], 10)
    ds.reload()
    assert len(ds) == 18


def test_upsampled_dataset_existing_file_and_wrong_size(tmp_path):
    path = save_error_set(tmp_path / "errors.json", [4], 10)
    assert len(UpsampledDataset(_base(), path, lambda_up=1)) == 11
    with pytest.raises(ValueError, match="errors.json"):
        UpsampledDataset(_base(12), path)


@pytest.mark.parametrize("batch_size", [1, 3])
def test_upsampled_dataset_attach_fixes_epoch_length(tmp_path, batch_size):
    path = tmp_path / "errors.json"
    ds = UpsampledDataset(_base(), str(path))
    loader = DataLoader(ds, batch_size=batch_size, shuffle=False)  # built while the file does not exist
    assert len(loader) == -(-10 // batch_size)
    seen: list[int] = []
    engine = Engine(lambda e, batch: seen.extend(batch["index"].tolist()))
    engine.data_loader = loader
    ds.attach(engine)
    lengths = {}
    engine.add_event_handler(Events.EPOCH_STARTED, lambda e: lengths.setdefault("started", e.state.epoch_length))

    save_error_set(path, [1, 8], 10)  # the first stage writes the file; balanced: 3 extra copies each
    expected = list(range(10)) + [1, 1, 1, 8, 8, 8]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # e.g. ignite's "data iterator can not provide data anymore"
        state = engine.run(loader, max_epochs=1)
    n_batches = -(-16 // batch_size)
    assert lengths["started"] == n_batches and state.epoch_length == n_batches
    assert state.iteration == n_batches
    assert seen == expected


def test_upsampled_dataset_attach_rereads_rewritten_file(tmp_path):
    path = save_error_set(tmp_path / "errors.json", [0], 10)
    ds = UpsampledDataset(_base(), path, lambda_up=1)
    loader = DataLoader(ds, batch_size=2)
    assert len(ds) == 11 and len(loader) == 6
    seen: list[int] = []
    engine = Engine(lambda e, batch: seen.extend(batch["index"].tolist()))
    engine.data_loader = loader
    ds.attach(engine)
    save_error_set(path, [0, 5], 10)  # rewritten after the dataset was built: 12 items, 6 batches
    state = engine.run(loader, max_epochs=2)
    assert state.epoch_length == 6 and state.iteration == 12
    assert seen == (list(range(10)) + [0, 5]) * 2


def test_upsampled_dataset_in_supervised_trainer_built_before_the_file(tmp_path):
    """The second JTT stage as the bundle builds it: a MONAI SupervisedTrainer (which fixes its epoch length from
    the loader at construction) over an UpsampledDataset whose file the first stage writes afterwards."""
    from monai.engines import SupervisedTrainer

    path = tmp_path / "errors.json"
    base = [{"image": torch.full((3,), float(i)), "label": i % 2, "index": i} for i in range(10)]
    ds = UpsampledDataset(base, path, lambda_up=2)
    network = torch.nn.Linear(3, 2)
    trainer = SupervisedTrainer(
        device=torch.device("cpu"), max_epochs=2, train_data_loader=DataLoader(ds, batch_size=4), network=network,
        optimizer=torch.optim.SGD(network.parameters(), lr=0.01), loss_function=torch.nn.CrossEntropyLoss(),
        train_handlers=[ds], decollate=False)
    assert trainer.state.epoch_length == 3  # ceil(10 / 4): the length before the file exists
    seen: list[int] = []
    trainer.add_event_handler(Events.ITERATION_COMPLETED,
                              lambda e: seen.extend(e.state.batch["index"].tolist()))
    save_error_set(path, [3, 7], 10)  # 10 + 2 * 2 = 14 items, ceil(14 / 4) = 4 batches
    trainer.run()
    assert trainer.state.epoch_length == 4 and trainer.state.iteration == 8
    assert seen == (list(range(10)) + [3, 3, 7, 7]) * 2


def test_load_error_set_refuses_fractional_and_out_of_range_indices(tmp_path):
    import json as _json

    from spatialspec.robust.jtt import load_error_set as _load

    path = tmp_path / "errors.json"
    path.write_text(_json.dumps({"n_samples": 4, "errors": [1.7]}))
    with pytest.raises(ValueError, match="errors.json.*integers"):
        _load(path)
    path.write_text(_json.dumps({"n_samples": 4, "errors": [0, 4]}))
    with pytest.raises(ValueError, match=r"errors.json.*\[0, 4\)"):
        _load(path)
