"""Training hyperparameters: the defaults, overridable through the Trainer's custom_config."""
import dataclasses
from typing import Any, Dict, Mapping, Tuple


@dataclasses.dataclass(frozen=True)
class HParams:
    """How the model is built and trained."""

    learning_rate: float = 0.003
    hidden_units: Tuple[int, ...] = (128, 64)
    embedding_dim: int = 8
    dropout: float = 0.1
    train_batch_size: int = 256
    eval_batch_size: int = 512

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
            try:
                values[field.name] = tuple(int(v) for v in value) if field.name == "hidden_units" else type(field.default)(value)
            except (TypeError, ValueError) as error:
                raise ValueError(f"hyperparameter {field.name!r} has a bad value {value!r}: {error}") from error
        return cls(**values)
