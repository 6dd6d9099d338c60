"""Training hyperparameters: the defaults, and the search space the Tuner explores.

The Trainer reads `HParams.from_config` of its custom_config, and, when the pipeline runs the
Tuner (`run_local.py --tune`), the best values it found on top (`HParams.from_tuned`). The
Tuner's space (`SEARCH_SPACE`) names the same fields, so what it finds is what the Trainer
trains with.
"""
import dataclasses
from typing import Any, Dict, Mapping, Optional, Tuple


@dataclasses.dataclass(frozen=True)
class HParams:
    """How the model is built and trained.

    Chosen on the shipped data (eval split, AUC by training step): the data is small, so a
    narrow tower, small embeddings and dropout keep the model from over-fitting; with 400
    steps of 256 trips (about 8 passes) AUC levels off near 0.96.
    """

    learning_rate: float = 0.001
    hidden_units: Tuple[int, ...] = (64, 32)
    embedding_dim: int = 4
    dropout: float = 0.2
    train_batch_size: int = 256
    eval_batch_size: int = 512
    # Read the columns joined from external tables (the holiday calendar). Transform computes
    # them either way; False trains the model without them, to measure what they add.
    external_features: bool = True
    # Seeds weight initialisation, dropout and the shuffling of training examples, so reruns on
    # the same data, code and hyperparameters train nearly the same model (TensorFlow on CPU is
    # not bit-for-bit deterministic across thread schedules).
    seed: int = 0

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> "HParams":
        """Builds HParams from a custom_config mapping, ignoring keys that are not HParams.

        Raises:
            ValueError: when a value has the wrong type for its field.
        """
        values: Dict[str, Any] = {}
        for field in dataclasses.fields(cls):
            if field.name not in config:
                continue
            value = config[field.name]
            if isinstance(field.default, bool):
                if not isinstance(value, bool):
                    raise ValueError(f"hyperparameter {field.name!r} must be true or false, got {value!r}")
                values[field.name] = value
                continue
            if field.name == "hidden_units" and isinstance(value, str):
                value = value.split(",")  # the Tuner's choices are strings: "64,32"
            try:
                values[field.name] = tuple(int(v) for v in value) if field.name == "hidden_units" else type(field.default)(value)
            except (TypeError, ValueError) as error:
                raise ValueError(f"hyperparameter {field.name!r} has a bad value {value!r}: {error}") from error
        return cls(**values)

    @classmethod
    def from_tuned(cls, config: Mapping[str, Any], tuned: Optional[Mapping[str, Any]]) -> "HParams":
        """HParams of a custom_config with the Tuner's best values on top.

        Args:
            config: The Trainer's custom_config (overrides of the defaults).
            tuned: The Tuner's best hyperparameters as TFX passes them (a KerasTuner
                HyperParameters config, whose "values" are read), or None without a Tuner.
        """
        values = dict(config)
        if tuned:
            values.update(tuned.get("values", {}))
        return cls.from_config(values)


# The Tuner's search space: field -> the values tried. Around the defaults, which were chosen by
# hand on the shipped data; docs/quality.md has what the search found.
SEARCH_SPACE: Dict[str, Tuple[Any, ...]] = {
    "learning_rate": (0.0003, 0.001, 0.003),
    "hidden_units": ("32,16", "64,32", "128,64"),
    "embedding_dim": (4, 8),
    "dropout": (0.1, 0.2, 0.3),
}
