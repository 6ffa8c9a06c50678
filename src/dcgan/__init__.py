"""dcgan: train, evaluate and sample Deep Convolutional GANs (Radford, Metz, Chintala 2015).

Names are imported on first use, so light modules (such as the image decoders that worker
processes run) do not pull in torch and the whole package.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_EXPORTS = {
    "DCGAN": "dcgan.api",
    "LOSSES": "dcgan.nn.losses",
    "Config": "dcgan.config",
    "ConfigError": "dcgan.errors",
    "DataConfig": "dcgan.config",
    "Discriminator": "dcgan.nn.models",
    "Generator": "dcgan.nn.models",
    "ModelConfig": "dcgan.config",
    "OutputConfig": "dcgan.config",
    "TrainConfig": "dcgan.config",
    "TrainResult": "dcgan.training.loop",
    "train": "dcgan.training.loop",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'dcgan' has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)


def __dir__() -> list[str]:
    return [*globals(), *__all__]
