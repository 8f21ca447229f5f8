"""Image-level scores from a model's output (Sec. 3.3.2 and the official code's readout).

A pixel-wise model yields a probability map; classification needs one number per image. The readout matters: on
the synthetic data a pixel-wise model trained at the ``binary`` level ranks images by the size of whatever it
finds (the spurious block wins) under ``mean``, but by its most confident pixel under ``max``. See
``docs/results.md`` for the level x score table.

Methods:
    ``mean``    mean foreground probability over the image (the official code's readout)
    ``max``     the largest foreground probability
    ``topk:K``  mean of the K largest foreground probabilities
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping

import torch
from monai.config import KeysCollection, NdarrayOrTensor
from monai.transforms import MapTransform, Transform
from monai.utils import convert_to_tensor, deprecated_arg, ensure_tuple

from spatialspec import __version__
from spatialspec.score_names import SCORE_METHODS, parse_score  # names and parser, free of torch

__all__ = ["parse_score", "image_score", "batch_image_score", "ImageScore", "ImageScored", "ImageScoreD",
           "ImageScoreDict", "SCORE_METHODS"]


def image_score(prob: torch.Tensor, method: str = "mean", channel: int = 1) -> torch.Tensor:
    """Reduce class probabilities of one image to its positive-class score.

    Args:
        prob: ``C`` (a classifier's probabilities) or ``C x H x W`` (a pixel-wise probability map), channel first.
        method: ``mean``, ``max`` or ``topk:K``; ignored for a classifier output.
        channel: the positive (abnormal) class channel.

    Returns:
        a 1-element tensor with the score.
    """
    prob = convert_to_tensor(prob)
    if prob.ndim == 0:
        parse_score(method)
        return prob.reshape(1).float()
    return batch_image_score(prob[None], method, channel)


def batch_image_score(prob: torch.Tensor, method: str = "mean", channel: int = 1) -> torch.Tensor:
    """Vectorised :func:`image_score` over a batch: ``prob`` is ``B x C`` or ``B x C x H x W``; returns ``B``."""
    kind, k = parse_score(method)
    prob = convert_to_tensor(prob)
    if prob.ndim < 2:
        raise ValueError(f"batch_image_score expects B x C (x H x W) probabilities, got shape {tuple(prob.shape)}")
    fg = prob[:, channel].float().reshape(prob.shape[0], -1)
    if fg.shape[1] == 1 or kind == "mean":
        return fg.mean(dim=1)
    if kind == "max":
        return fg.max(dim=1).values
    return torch.topk(fg, min(k, fg.shape[1]), dim=1).values.mean(dim=1)


class ImageScore(Transform):
    """Array transform: image-level abnormality score from a (softmaxed) model output; see :func:`image_score`.

    Args:
        method: ``mean`` (default), ``max`` or ``topk:K``.
        channel: the abnormal class channel.
        batched: the input carries a leading batch dimension (an evaluator run with ``decollate=False``); the
            output is then one score per image, shape ``B``.
    """

    def __init__(self, method: str = "mean", channel: int = 1, batched: bool = False) -> None:
        parse_score(method)
        self.method = method
        self.channel = channel
        self.batched = batched

    def __call__(self, prob: NdarrayOrTensor) -> torch.Tensor:
        if self.batched:
            return batch_image_score(prob, self.method, self.channel)
        return image_score(prob, self.method, self.channel)


class ImageScored(MapTransform):
    """Dictionary form of :class:`ImageScore`: writes the score of ``keys`` to ``output_keys``.

    In an evaluator's postprocessing the output key lands in ``engine.state.output`` where the
    :class:`spatialspec.handlers.RobustAUROC` handler reads it.

    Args:
        keys: the key of the (softmaxed) model output; one key.
        method: ``mean`` (default), ``max`` or ``topk:K``.
        channel: the abnormal class channel.
        output_keys: where the score is written, one per key as in MONAI's dictionary transforms; default ``score``.
        batched: the input carries a leading batch dimension; see :class:`ImageScore`.
        allow_missing_keys: skip keys that are absent.
        output_key: deprecated since 0.1.0, the former name of ``output_keys``; a config that still passes it runs,
            with a ``FutureWarning``.

    Raises:
        ValueError: when ``keys`` or ``output_keys`` name more than one key, or ``output_key`` and ``output_keys``
            name different keys.
    """

    @deprecated_arg(name="output_key", new_name="output_keys", since="0.1.0", version_val=__version__,
                    msg_suffix="Please use `output_keys` instead (one output key per key, as in MONAI's "
                               "dictionary transforms).")
    def __init__(self, keys: KeysCollection, method: str = "mean", channel: int = 1,
                 output_keys: KeysCollection = "score", batched: bool = False, allow_missing_keys: bool = False,
                 output_key: str | None = None) -> None:
        super().__init__(keys, allow_missing_keys)
        if len(self.keys) != 1:
            raise ValueError(f"ImageScored: keys must name one output, got {list(self.keys)}")
        outputs = ensure_tuple(output_keys)
        if len(outputs) != 1:
            raise ValueError(f"ImageScored: output_keys must name one key per key (one), got {list(outputs)}")
        if output_key is not None and output_key != outputs[0]:
            raise ValueError(f"ImageScored: output_key={output_key!r} (deprecated) and output_keys={outputs[0]!r} "
                             "disagree; pass output_keys only")
        self.scorer = ImageScore(method, channel, batched)
        self.output_keys = outputs

    def __call__(self, data: Mapping[Hashable, NdarrayOrTensor]) -> dict[Hashable, NdarrayOrTensor]:
        d = dict(data)
        for key, out_key in zip(self.key_iterator(d), self.output_keys):
            d[out_key] = self.scorer(d[key])
        return d


ImageScoreD = ImageScoreDict = ImageScored
