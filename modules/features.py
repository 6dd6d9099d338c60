"""The one home of the taxi task's feature keys, the label and their sizes.

Every other file (preprocessing, model, signatures, pipeline configuration, serving client,
tests) imports these names; a key typed a second time elsewhere is a bug.
"""
import math
from typing import Any, Dict, List, Mapping

# The raw columns the label is computed from. The label itself is not a column.
TIPS_KEY = "tips"
FARE_KEY = "fare"
LABEL_KEY = "big_tipper"
# A trip is a "big tipper" when the tip exceeds this percentage of the fare.
BIG_TIP_PERCENT = 20


def cents(dollars: Any) -> Any:
    """Dollars as whole cents, for a Python number or a pandas Series.

    The Transform graph does the same with `tf.round`, which Python's `round` cannot call.
    """
    return round(dollars * 100)


def is_big_tip(tips_cents: Any, fare_cents: Any) -> Any:
    """Whether a tip exceeds BIG_TIP_PERCENT of the fare, both in whole cents.

    Whole cents make the comparison exact: a tip of exactly 20% (5.01 on 25.05) is not big,
    where float32 dollars would say it is.

    Args:
        tips_cents: Tips in whole cents: a number, a NumPy array or pandas Series, or a tensor.
        fare_cents: Fares in whole cents, of the same kind and shape.

    Returns:
        True where the tip is big, in the inputs' kind. The benchmarks and tests make the cents
        with `cents`, the Transform graph with `tf.round`; all share this comparison.
    """
    return tips_cents * 100 > fare_cents * BIG_TIP_PERCENT


def trip_is_big_tipper(trip: Mapping[str, Any]) -> bool:
    """The label of one raw trip ({column: value}), as the Transform graph makes it: a missing
    tip counts as 0, a missing (or NaN) fare makes no big tipper."""
    fare, tips = trip.get(FARE_KEY), trip.get(TIPS_KEY)
    if fare is None or (isinstance(fare, float) and math.isnan(fare)):
        return False
    return bool(is_big_tip(cents(float(tips or 0.0)), cents(float(fare))))

# Raw float columns scaled to z-scores (after log1p, they are long-tailed).
NUMERIC_FEATURE_KEYS: List[str] = ["fare", "trip_miles", "trip_seconds"]
# Raw numeric columns also cut into quantile buckets, so the model can learn the sharp,
# non-linear steps of tipping behaviour (the meter's fare steps, short versus long trips).
QUANTILE_BUCKET_FEATURE_KEYS: List[str] = ["fare", "trip_miles", "trip_seconds"]
NUM_QUANTILE_BUCKETS = 40
# Coordinates are bucketized into a grid rather than scaled.
COORDINATE_FEATURE_KEYS: List[str] = [
    "pickup_latitude",
    "pickup_longitude",
    "dropoff_latitude",
    "dropoff_longitude",
]
NUM_COORDINATE_BUCKETS = 10
# String columns mapped through a vocabulary computed by Transform.
VOCABULARY_FEATURE_KEYS: List[str] = ["payment_type", "company"]
# Integer codes with many values (census tracts) also go through a vocabulary.
INTEGER_VOCABULARY_FEATURE_KEYS: List[str] = ["dropoff_census_tract"]
VOCABULARY_TOP_K = 500
NUM_OOV_BUCKETS = 5
# A vocabulary column's id for a missing value; the vocabulary's ids and its out-of-vocabulary
# buckets follow from 1.
VOCABULARY_MISSING_ID = 0
# Integer categories with a known range: key -> number of valid values (0 .. n-1).
RANGE_FEATURE_SIZES: Dict[str, int] = {
    "trip_start_hour": 24,
    "trip_start_day": 8,  # 1 (Sunday) .. 7
    "trip_start_month": 13,  # 1 .. 12
    "pickup_community_area": 78,  # 1 .. 77
    "dropoff_community_area": 78,
}

# Raw columns that are in the data but not used by the model: the pickup census tract is
# empty in every row of the shipped sample.
UNUSED_RAW_KEYS: List[str] = ["pickup_census_tract"]

# External tables (`modules/external.py`) joined to each trip inside the Transform graph.
# The holiday calendar is keyed by the trip's date, taken from its start timestamp: the
# shipped timestamps are Chicago wall-clock time written as if it were UTC (their UTC hour
# equals trip_start_hour in every row), so the UTC calendar date is the local date.
HOLIDAY_TABLE = "us_il_holidays"
TIMESTAMP_KEY = "trip_start_timestamp"
# Joined columns that become model features: table -> column -> number of valid values
# (0 .. n-1). A trip whose date is not in the table gets bucket n, like a missing value.
EXTERNAL_FEATURE_SIZES: Dict[str, Dict[str, int]] = {
    HOLIDAY_TABLE: {"day_of_week": 7, "is_holiday": 2, "is_day_before_holiday": 2},
}
# The raw columns external tables are joined on.
EXTERNAL_JOIN_KEYS: List[str] = [TIMESTAMP_KEY]

# Columns that change with the span's time by construction: a daily or monthly span differs
# from the ones before it in these, so the drift check does not judge them by default. The
# joined calendar columns are listed by name, as they appear in the joined statistics.
SPAN_TIME_KEYS: List[str] = [
    "trip_start_month",
    "trip_start_day",
    "trip_start_hour",
    TIMESTAMP_KEY,
    "day_of_week",
    "is_holiday",
    "is_day_before_holiday",
]

# Every raw column the model reads, in a stable order: the inputs of the serving signature.
RAW_FEATURE_KEYS: List[str] = sorted(
    set(NUMERIC_FEATURE_KEYS)
    | set(QUANTILE_BUCKET_FEATURE_KEYS)
    | set(COORDINATE_FEATURE_KEYS)
    | set(VOCABULARY_FEATURE_KEYS)
    | set(INTEGER_VOCABULARY_FEATURE_KEYS)
    | set(RANGE_FEATURE_SIZES)
    | set(EXTERNAL_JOIN_KEYS)
)

# Slices the Evaluator reports, so a user sees where the model is weak.
SLICE_FEATURE_KEYS: List[str] = ["payment_type", "trip_start_hour"]
# Card-paid trips: the only ones whose tips are recorded (cash tips are not), so the slice where
# the model's skill at telling tippers apart is measured; the Evaluator gates it.
PAYMENT_TYPE_KEY = "payment_type"
CARD_PAYMENT = "Credit Card"

# How a serving request says "this value is missing", the same way an empty CSV cell does.
MISSING_FLOAT = math.nan
MISSING_INT = -1
MISSING_STRING = ""


def external_feature_names() -> List[str]:
    """Returns every joined external column the model reads, over all tables."""
    return [column for columns in EXTERNAL_FEATURE_SIZES.values() for column in columns]


def transformed_name(key: str) -> str:
    """Returns the name of the Transform output made from raw column `key`."""
    return f"{key}_xf"


def bucket_name(key: str) -> str:
    """Returns the name of the quantile-bucket Transform output made from `key`."""
    return f"{key}_bucket_xf"


def missing_name(key: str) -> str:
    """Returns the name of the 0/1 "value was missing" Transform output for `key`."""
    return f"{key}_missing_xf"


def vocabulary_name(key: str) -> str:
    """Returns the file name of the vocabulary Transform computes for `key`."""
    return f"{key}_vocabulary"


def embedding_layer_name(input_name: str) -> str:
    """Returns the name of the model's embedding layer for the categorical Transform output
    `input_name` (e.g. `transformed_name("company")`); warm start finds the layers by it."""
    return f"{input_name}_embedding"


# Derived ratios (fare per mile, fare per minute, speed) are scaled like numeric columns.
DERIVED_FEATURE_KEYS: List[str] = ["fare_per_mile", "fare_per_minute", "miles_per_hour"]
