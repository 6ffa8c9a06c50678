"""dcgan: train, evaluate and sample Deep Convolutional GANs (Radford, Metz, Chintala 2015)."""

from dcgan.api import DCGAN
from dcgan.config import Config, ConfigError, DataConfig, ModelConfig, OutputConfig, TrainConfig
from dcgan.losses import LOSSES
from dcgan.models import Discriminator, Generator
from dcgan.training import TrainResult, train

__version__ = "0.1.0"

__all__ = [
    "DCGAN",
    "LOSSES",
    "Config",
    "ConfigError",
    "DataConfig",
    "Discriminator",
    "Generator",
    "ModelConfig",
    "OutputConfig",
    "TrainConfig",
    "TrainResult",
    "train",
]
