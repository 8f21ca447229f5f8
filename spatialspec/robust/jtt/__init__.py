"""Just Train Twice (Liu et al. 2021), a baseline on binary labels (Saab et al. 2022, Table 1, App. A.2): the training
samples an ERM model gets wrong are upsampled for a second, fresh ERM model.

The method package holds what only JTT uses; the ``jtt_classification`` bundle wires it:

- step 2, the end of the ERM stage: :class:`JTTErrorSetWriter` (:mod:`.writer`) writes the error set;
- step 3, the second stage: :class:`UpsampledDataset` (:mod:`.upsampling`) repeats each error ``1 + lambda_up`` times.
"""

from __future__ import annotations

from .upsampling import (
    UpsampledDataset,
    error_set,
    load_error_set,
    save_error_set,
    upsample,
    upsample_indices,
    upsampling_factor,
)
from .writer import JTTErrorSetWriter

__all__ = ["error_set", "upsample", "upsample_indices", "upsampling_factor", "save_error_set", "load_error_set",
           "UpsampledDataset", "JTTErrorSetWriter"]
