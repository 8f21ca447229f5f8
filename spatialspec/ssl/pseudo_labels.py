"""Step 2 of Seg-SSL (Saab et al. 2022, Sec. 4.2.1, after Hooper et al. 2022): the initial network f' labels the
unlabelled training images, and the final network f trains on the manual labels plus these pseudo-labels.

* :func:`save_pseudo_labels` / :func:`load_pseudo_labels`: the pseudo-label file (``.npz``, written atomically):
  ``indices`` (positions in the training data list) and ``masks`` (``K x 1 x spatial`` uint8 class maps);
* :class:`PseudoLabelWriter`: the handler that writes it when step 1's trainer completes;
* :class:`PseudoLabelledDataset`: the training set of step 2, whose unlabelled items carry the pseudo-labels.
"""

from __future__ import annotations

import io
import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from monai.utils import convert_to_tensor, min_version, optional_import
from torch.utils.data import Dataset

from spatialspec.atomic import atomic_write
from spatialspec.embeddings.checkpoint import load_checkpoint_state

Events, _ = optional_import("ignite.engine", "0.4.11", min_version, "Events")
if TYPE_CHECKING:
    from ignite.engine import Engine
else:
    Engine, _ = optional_import("ignite.engine", "0.4.11", min_version, "Engine")

__all__ = ["save_pseudo_labels", "load_pseudo_labels", "predict_masks", "PseudoLabelWriter", "PseudoLabelledDataset"]

logger = logging.getLogger(__name__)


def save_pseudo_labels(path: str | os.PathLike, indices: Sequence[int] | np.ndarray, masks: np.ndarray,
                       n_samples: int) -> Path:
    """Write pseudo-labels atomically as ``.npz``: ``indices`` (``K`` distinct positions in ``[0, n_samples)``),
    ``masks`` (``K x 1 x spatial`` class indices, stored as uint8) and ``n_samples``.

    Raises:
        ValueError: naming ``indices`` or ``masks`` when they disagree in length, repeat, or fall out of range.
    """
    indices = np.asarray(indices, dtype=np.int64).reshape(-1)
    masks = np.asarray(masks)
    if masks.shape[:1] != indices.shape or masks.ndim < 3:
        raise ValueError(f"masks must be K x 1 x spatial... for the K = {indices.size} indices, got shape "
                         f"{masks.shape}")
    if np.unique(indices).size != indices.size or (indices.size and (indices.min() < 0 or indices.max() >= n_samples)):
        raise ValueError(f"indices must be distinct positions in [0, {n_samples}), got {indices.tolist()[:10]}...")
    if masks.size and (masks.min() < 0 or masks.max() > 255):
        raise ValueError("masks must hold class indices in [0, 255]")
    buffer = io.BytesIO()
    np.savez_compressed(buffer, indices=indices, masks=masks.astype(np.uint8), n_samples=np.int64(n_samples))
    return atomic_write(path, buffer.getvalue())


def load_pseudo_labels(path: str | os.PathLike, n_samples: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Read a file of :func:`save_pseudo_labels`; returns ``(indices, masks)``.

    Raises:
        FileNotFoundError: naming the file while step 1 has not written it.
        ValueError: naming the file when it lacks a field or was written for another number of samples.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"pseudo-label file not found: {path} (written when Seg-SSL step 1 completes)")
    with np.load(path, allow_pickle=False) as content:
        missing = [k for k in ("indices", "masks", "n_samples") if k not in content]
        if missing:
            raise ValueError(f"pseudo-label file {path} lacks {missing}")
        indices, masks, stored = content["indices"], content["masks"], int(content["n_samples"])
    if n_samples is not None and stored != n_samples:
        raise ValueError(f"pseudo-label file {path} was written for {stored} training samples, but the data set has "
                         f"{n_samples}")
    return indices, masks


def predict_masks(network: torch.nn.Module, data_loader: Any, image_key: str = "image",
                  keys: Sequence[str] = ()) -> dict[str, np.ndarray]:
    """Class maps ``argmax`` of ``network`` over ``data_loader`` (eval mode, no gradients; the mode is restored).

    Returns:
        ``masks`` (``N x 1 x spatial`` int64) and, for each of ``keys`` present in the batches, its values (``N``).
    """
    device = next(network.parameters()).device
    was_training = network.training
    network.eval()
    masks, extra = [], {k: [] for k in keys}
    try:
        with torch.no_grad():
            for batch in data_loader:
                logits = convert_to_tensor(network(convert_to_tensor(batch[image_key], track_meta=False).to(device)),
                                           track_meta=False)
                masks.append(logits.argmax(dim=1, keepdim=True).cpu().numpy())
                for k in keys:
                    if k in batch:
                        extra[k].append(np.asarray(torch.as_tensor(batch[k]).cpu()).reshape(-1))
    finally:
        network.train(was_training)
    out = {"masks": np.concatenate(masks) if masks else np.zeros((0, 1), np.int64)}
    out.update({k: np.concatenate(v) for k, v in extra.items() if v})
    return out


class PseudoLabelWriter:
    """When Seg-SSL step 1 completes, label the unlabelled training images with its network and write them with
    :func:`save_pseudo_labels`.

    Args:
        data_loader: the training data in data-list order (no shuffling), dict batches with the image and the 0/1
            ``labelled_key`` flag.
        output_file: the pseudo-label file, read by :class:`PseudoLabelledDataset`.
        checkpoint: a checkpoint of step 1 (e.g. its best validation checkpoint, ``{"model": state_dict}`` or a
            bare state dict) loaded into the network before labelling when the file exists; ``None`` labels with the
            final weights.
        labelled_key, image_key: batch keys.
    """

    def __init__(self, data_loader: Any, output_file: str | os.PathLike, checkpoint: str | os.PathLike | None = None,
                 labelled_key: str = "labelled", image_key: str = "image") -> None:
        self.data_loader, self.output_file = data_loader, Path(output_file)
        self.checkpoint = Path(checkpoint) if checkpoint else None
        self.labelled_key, self.image_key = labelled_key, image_key

    def attach(self, engine: Engine) -> None:
        """Run at ``Events.COMPLETED`` of step 1's trainer."""
        engine.add_event_handler(Events.COMPLETED, self)

    def __call__(self, engine: Engine) -> None:
        """Pseudo-label with ``engine.network`` and write the file."""
        network = getattr(engine, "network", None)
        if network is None:
            raise AttributeError("PseudoLabelWriter: the engine has no network: attach it to a SupervisedTrainer")
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            # data-parallel runs: every rank trained step 1, but only rank 0 writes (and replaces) its checkpoint;
            # wait until every rank is here, so no rank reads it while rank 0 still replaces it
            torch.distributed.barrier()
        if self.checkpoint is not None and self.checkpoint.is_file():
            network.load_state_dict(load_checkpoint_state(self.checkpoint, next(network.parameters()).device))
        out = predict_masks(network, self.data_loader, self.image_key, keys=(self.labelled_key, "y"))
        if self.labelled_key not in out:
            raise KeyError(f"PseudoLabelWriter: the batches have no {self.labelled_key!r} key")
        unlabelled = np.flatnonzero(out[self.labelled_key] == 0)
        masks = out["masks"][unlabelled]
        save_pseudo_labels(self.output_file, unlabelled, masks, n_samples=len(out["masks"]))
        positive = masks.reshape(len(unlabelled), -1).any(axis=1) if len(unlabelled) else np.zeros(0, bool)
        engine.state.metrics["pseudo_labelled"] = int(len(unlabelled))
        engine.state.metrics["pseudo_positive_images"] = int(positive.sum())
        if "y" in out and len(unlabelled):
            # a diagnostic only: how often "any positive pixel" matches the image label of a pseudo-labelled image
            engine.state.metrics["pseudo_image_accuracy"] = float((positive == (out["y"][unlabelled] == 1)).mean())
        logger.info(f"Seg-SSL: pseudo-labelled {len(unlabelled)} of {len(out['masks'])} training images "
                    f"({int(positive.sum())} with a positive pixel) -> {self.output_file}")


class PseudoLabelledDataset(Dataset):
    """Step 2's training set: the items of ``dataset`` (in order), where each unlabelled item (``labelled_key`` 0)
    gets its pseudo-label under ``label_key``.

    Given the path of a pseudo-label file, the dataset reads it when it exists and again when the trainer it feeds
    starts (list it in the trainer's handlers, e.g. through :class:`spatialspec.handlers.AttachToTrainer`), so step 2
    can be built before step 1 has written the file; until then it refuses to yield items.

    Args:
        dataset: the flagged training items (e.g. a ``CacheDataset`` whose unlabelled items carry hidden labels).
        pseudo_labels: the file of :func:`save_pseudo_labels`, or ``(indices, masks)``.
        label_key, labelled_key: item keys.

    Raises (on item access):
        ValueError: naming the item when an unlabelled item has no pseudo-label, a labelled one has one, or the
            shapes differ.
    """

    def __init__(self, dataset: Any, pseudo_labels: str | os.PathLike | tuple[np.ndarray, np.ndarray],
                 label_key: str = "label", labelled_key: str = "labelled") -> None:
        self.dataset, self.label_key, self.labelled_key = dataset, label_key, labelled_key
        self.source = Path(pseudo_labels) if isinstance(pseudo_labels, (str, os.PathLike)) else None
        self.positions: np.ndarray | None = None
        self.masks: np.ndarray | None = None
        if self.source is None:
            self._set(*pseudo_labels)
        elif self.source.is_file():
            self.reload()

    def _set(self, indices: np.ndarray, masks: np.ndarray) -> None:
        indices = np.asarray(indices, dtype=np.int64).reshape(-1)
        positions = np.full(len(self.dataset), -1, dtype=np.int64)
        if indices.size and (indices.min() < 0 or indices.max() >= len(self.dataset)):
            raise ValueError(f"pseudo-label indices must lie in [0, {len(self.dataset)})")
        positions[indices] = np.arange(indices.size)
        self.positions, self.masks = positions, np.asarray(masks)

    def reload(self) -> None:
        """Read the pseudo-label file again (step 1 may have rewritten it)."""
        if self.source is not None:
            self._set(*load_pseudo_labels(self.source, n_samples=len(self.dataset)))

    def attach(self, engine: Engine) -> None:
        """Re-read the pseudo-labels when ``engine`` (step 2's trainer) starts."""
        engine.add_event_handler(Events.STARTED, lambda _: self.reload())

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> dict[str, Any]:
        if self.positions is None:
            self.reload()  # raises FileNotFoundError, naming the file, while step 1 has not written it
        item = dict(self.dataset[index])
        position = int(self.positions[index])
        labelled = int(torch.as_tensor(item[self.labelled_key]).reshape(-1)[0])
        if labelled and position >= 0:
            raise ValueError(f"training item {index} is labelled but has a pseudo-label")
        if not labelled:
            if position < 0:
                raise ValueError(f"training item {index} is unlabelled but has no pseudo-label")
            label = item[self.label_key]
            mask = torch.as_tensor(self.masks[position])
            if tuple(mask.shape) != tuple(label.shape):
                raise ValueError(f"pseudo-label of training item {index} has shape {tuple(mask.shape)}, its label "
                                 f"{tuple(label.shape)}")
            item[self.label_key] = mask.to(dtype=label.dtype if isinstance(label, torch.Tensor) else torch.float32)
        return item
