"""PixelSimilarityLoss (Seg-SPL, Sec. 4.2.2) against an explicit pairwise computation and hand values."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from spatialspec.losses import PixelSimilarityLoss


def brute_force(embeddings: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Minus the mean of cosine_similarity over the explicit grid of ordered pairs i != j of positive pixels."""
    d = embeddings.shape[1]
    pixels = embeddings.movedim(1, -1).reshape(-1, d)[labels.reshape(-1) == 1]
    p = pixels.shape[0]
    grid = F.cosine_similarity(pixels[:, None, :].expand(p, p, d), pixels[None, :, :].expand(p, p, d), dim=-1)
    off_diagonal = ~torch.eye(p, dtype=torch.bool)
    return -grid[off_diagonal].mean()


def _random(seed: int, shape=(3, 5, 6, 7), p_positive=0.3):
    gen = torch.Generator().manual_seed(seed)
    embeddings = torch.randn(*shape, generator=gen, dtype=torch.float64)
    labels = (torch.rand(shape[0], 1, *shape[2:], generator=gen) < p_positive).to(torch.float64)
    return embeddings, labels


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_matches_brute_force_value_and_gradient(seed):
    embeddings, labels = _random(seed)
    emb_fast = embeddings.clone().requires_grad_(True)
    emb_slow = embeddings.clone().requires_grad_(True)
    fast = PixelSimilarityLoss()(emb_fast, labels)
    slow = brute_force(emb_slow, labels)
    assert fast.item() == pytest.approx(slow.item(), abs=1e-5)
    fast.backward()
    slow.backward()
    torch.testing.assert_close(emb_fast.grad, emb_slow.grad, atol=1e-5, rtol=1e-4)
    assert bool((emb_fast.grad[labels.expand_as(embeddings) == 0] == 0).all())  # negative pixels get no gradient


def test_float32_and_3d_inputs_match_brute_force():
    embeddings, labels = _random(3, shape=(2, 4, 5, 4, 3))
    got = PixelSimilarityLoss()(embeddings.float(), labels.float())
    assert got.dtype == torch.float32
    assert got.item() == pytest.approx(brute_force(embeddings, labels).item(), abs=1e-5)


def test_hand_values():
    loss_fn = PixelSimilarityLoss()
    # pixels (1, 0), (0, 1), (1, 1): cosines 0, 1/sqrt2, 1/sqrt2; mean over the 6 ordered pairs = sqrt2 / 3
    emb = torch.tensor([[1.0, 0.0, 1.0], [0.0, 1.0, 1.0]]).reshape(1, 2, 1, 3)
    assert loss_fn(emb, torch.ones(1, 1, 1, 3)).item() == pytest.approx(-math.sqrt(2) / 3, abs=1e-6)
    # identical directions (any lengths) across two images: -1
    emb = torch.stack([torch.tensor([1.0, 2.0, 3.0]) * s for s in (2.0, 0.5)]).reshape(2, 3, 1, 1)
    assert loss_fn(emb, torch.ones(2, 1, 1, 1)).item() == pytest.approx(-1.0, abs=1e-6)
    # opposite directions: +1; the unlabelled third pixel is ignored
    emb = torch.tensor([[1.0, -3.0, 7.0]]).reshape(1, 1, 1, 3)
    assert loss_fn(emb, torch.tensor([1.0, 1.0, 0.0]).reshape(1, 1, 1, 3)).item() == pytest.approx(1.0, abs=1e-6)


@pytest.mark.parametrize("n_positive", [0, 1])
def test_fewer_than_two_positives_give_zero_and_zero_gradients(n_positive):
    embeddings = torch.randn(2, 4, 3, 3, requires_grad=True)
    labels = torch.zeros(2, 1, 3, 3)
    labels[1, 0, 2, 1] = float(n_positive)
    loss = PixelSimilarityLoss()(embeddings, labels)
    assert loss.item() == 0.0
    loss.backward()
    assert embeddings.grad is not None
    assert bool((embeddings.grad == 0).all())


def test_zero_embedding_is_finite_and_counts_as_orthogonal():
    # pixels a, b, 0: the zero pixel has similarity 0 with both; mean over 6 ordered pairs = 2 cos(a, b) / 6
    emb = torch.tensor([[3.0, 1.0, 0.0], [4.0, 1.0, 0.0]]).reshape(1, 2, 1, 3).requires_grad_(True)
    loss = PixelSimilarityLoss()(emb, torch.ones(1, 1, 1, 3))
    cos_ab = (3 + 4) / (5 * math.sqrt(2))
    assert loss.item() == pytest.approx(-2 * cos_ab / 6, abs=1e-6)
    loss.backward()
    assert bool(torch.isfinite(emb.grad).all())


def test_half_precision_is_summed_in_float32():
    # 256 x 256 identical positive pixels: the pair sum is 65,536^2, far past float16's range
    emb = torch.ones(1, 2, 256, 256, dtype=torch.float16)
    loss = PixelSimilarityLoss()(emb, torch.ones(1, 1, 256, 256))
    assert loss.dtype == torch.float32
    assert loss.item() == pytest.approx(-1.0, abs=1e-4)


def test_shape_errors():
    loss_fn = PixelSimilarityLoss()
    with pytest.raises(ValueError, match="one channel"):
        loss_fn(torch.randn(2, 4, 3, 3), torch.ones(2, 2, 3, 3))
    with pytest.raises(ValueError, match="labels"):
        loss_fn(torch.randn(2, 4, 3, 3), torch.ones(2, 1, 3, 4))
    with pytest.raises(ValueError, match="labels"):
        loss_fn(torch.randn(2, 4, 3, 3), torch.ones(1, 1, 3, 3))
    with pytest.raises(ValueError, match="embeddings"):
        loss_fn(torch.randn(4, 9), torch.ones(4, 9))
    with pytest.raises(ValueError, match="eps"):
        PixelSimilarityLoss(eps=0)
