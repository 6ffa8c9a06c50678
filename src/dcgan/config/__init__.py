"""The one source of settings: a typed dataclass tree (`schema`), merged defaults < YAML file <
CLI flags (`loading`) and checked for impossible values (`checks`).

Unknown keys, wrong types and impossible values raise `ConfigError` with a one-line message that
names the offending key and what would fix it. Import the names from here.
"""

from dcgan.config.checks import augment_policies, validate
from dcgan.config.loading import (
    coerce,
    dump_yaml,
    from_dict,
    from_saved,
    load_yaml,
    merge,
    resolve,
)
from dcgan.config.schema import (
    AUGMENT_POLICIES,
    BUILT_IN_DATASETS,
    CUTOUT_RATIO,
    DATASET_NAMES,
    FILE_DATASETS,
    LOSS_NAMES,
    PRECISIONS,
    RESUMABLE_FIELDS,
    SPLITS,
    Z_DISTRIBUTIONS,
    Config,
    DataConfig,
    ModelConfig,
    OutputConfig,
    TrainConfig,
    diff,
    leaf_fields,
    leaf_type,
    locked_changes,
    model_dict,
    sections,
    setting,
    to_dict,
)
from dcgan.device import DEVICES

__all__ = [
    "AUGMENT_POLICIES",
    "BUILT_IN_DATASETS",
    "CUTOUT_RATIO",
    "DATASET_NAMES",
    "DEVICES",
    "FILE_DATASETS",
    "LOSS_NAMES",
    "PRECISIONS",
    "RESUMABLE_FIELDS",
    "SPLITS",
    "Z_DISTRIBUTIONS",
    "Config",
    "DataConfig",
    "ModelConfig",
    "OutputConfig",
    "TrainConfig",
    "augment_policies",
    "coerce",
    "diff",
    "dump_yaml",
    "from_dict",
    "from_saved",
    "leaf_fields",
    "leaf_type",
    "load_yaml",
    "locked_changes",
    "merge",
    "model_dict",
    "resolve",
    "sections",
    "setting",
    "to_dict",
    "validate",
]
