"""Training data: the dataset catalogue, readers, decoders and the decoded-image cache.

The public names live in `dcgan.data.dataset` and are imported on first use, so the decoder
module that worker processes import stays free of torch.
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = ["BUILT_IN", "ImageSet", "dataset_names", "load_images", "open_images"]


def __getattr__(name: str) -> Any:
    if name not in __all__:
        raise AttributeError(f"module 'dcgan.data' has no attribute {name!r}")
    return getattr(importlib.import_module("dcgan.data.dataset"), name)
