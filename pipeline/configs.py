"""Values that do not depend on where the pipeline runs: names, steps, thresholds, module paths.

Machine-dependent paths (data root, output dir) belong to the entry points.
"""
import dataclasses
from typing import Any, Dict, Optional

PIPELINE_NAME = "taxi_big_tipper"
# The name TF Serving serves the model under (`/models/<name>` in the container).
SERVING_MODEL_NAME = "big_tipper"

# TFX entry points, imported by dotted path (the `modules` package is installed by setup.py).
PREPROCESSING_FN = "modules.preprocessing.preprocessing_fn"
RUN_FN = "modules.train.run_fn"

# Layout of the data root: one folder per span, holding CSV files with a header row.
SPAN_FOLDER_PREFIX = "span-"
SPAN_FILE_PATTERN = "*.csv"


@dataclasses.dataclass(frozen=True)
class BlessingThresholds:
    """When the Evaluator blesses a model (all must hold).

    The floors sit well above trivial answers: always saying "not a big tipper" scores
    accuracy 0.775 and AUC 0.5 on the shipped data, and the one-feature rule
    "payment_type is Credit Card" scores AUC about 0.93.
    """

    min_auc: float = 0.93
    min_binary_accuracy: float = 0.85
    # Against the latest blessed model (the one serving): how much worse a candidate may be
    # before it is refused. 0 refuses any drop; a small tolerance absorbs evaluation noise
    # between two models of equal quality trained on the same data.
    max_auc_drop: float = 0.002
    max_binary_accuracy_drop: float = 0.005


@dataclasses.dataclass(frozen=True)
class PipelineOptions:
    """Optional parts of the pipeline, all with working defaults."""

    train_steps: int = 400
    eval_steps: int = 20
    # How many of the newest spans make the training window; None means every span present.
    span_window: Optional[int] = None
    thresholds: BlessingThresholds = BlessingThresholds()
    # Overrides of `modules.hparams.HParams`, passed to the Trainer as custom_config.
    hyperparameters: Dict[str, Any] = dataclasses.field(default_factory=dict)
    # Fingerprint of the code in `modules/`: part of the components' configuration, so a change
    # of code is never answered from the cache and lineage records which code ran.
    module_fingerprint: str = ""
    # Hash buckets of the train/eval split made by ExampleGen.
    train_buckets: int = 4
    eval_buckets: int = 1
