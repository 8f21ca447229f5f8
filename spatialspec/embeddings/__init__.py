"""Image embeddings of trained networks: the representations GEORGE clusters (App. A.2) and whose subgroup
alignment Table 2 / Fig. 3 of Saab et al. (2022) measure."""

from __future__ import annotations

from .alignment import (
    CENTERINGS,
    SAME_CLASS_PAIRS,
    SUBGROUP_COLOURS,
    pair_key,
    plot_embedding_projection,
    subgroup_cosine_similarity,
    umap_projection,
)
from .checkpoint import bundle_parser, bundle_test_loader, load_bundle_network, load_checkpoint_state
from .extract import EmbeddingExtractor, default_embedding_layer, extract_embeddings

__all__ = [
    "EmbeddingExtractor",
    "default_embedding_layer",
    "extract_embeddings",
    "CENTERINGS",
    "SAME_CLASS_PAIRS",
    "SUBGROUP_COLOURS",
    "pair_key",
    "plot_embedding_projection",
    "subgroup_cosine_similarity",
    "umap_projection",
    "bundle_parser",
    "bundle_test_loader",
    "load_bundle_network",
    "load_checkpoint_state",
]
