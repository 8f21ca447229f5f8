"""ImageSimilarityLoss, the image-level cosine embedding loss of Seg-SSL (Saab et al. 2022, Sec. 4.2.1), against
torch's CosineEmbeddingLoss."""

from __future__ import annotations

import pytest
import torch

from spatialspec.losses import ImageSimilarityLoss


def test_image_similarity_matches_cosine_embedding_loss():
    torch.manual_seed(0)
    a, b = torch.randn(4, 3, 5, 5), torch.randn(4, 3, 5, 5)
    reference = torch.nn.CosineEmbeddingLoss()(a.flatten(1), b.flatten(1), torch.ones(4))
    assert ImageSimilarityLoss()(a, b).item() == pytest.approx(reference.item(), abs=1e-6)
    pooled = torch.nn.CosineEmbeddingLoss()(a.mean((2, 3)), b.mean((2, 3)), torch.ones(4))
    assert ImageSimilarityLoss("mean")(a, b).item() == pytest.approx(pooled.item(), abs=1e-6)
    with pytest.raises(ValueError, match="equal shape"):
        ImageSimilarityLoss()(a, b[:2])
    with pytest.raises(ValueError, match="embedding"):
        ImageSimilarityLoss("max")
