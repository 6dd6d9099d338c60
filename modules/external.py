"""External tables: reference data from outside the trip logs, joined to each trip by a key.

A table is a CSV file with a header row: one key column, then value columns. It enters the
pipeline as a tracked artifact (`pipeline/validation/table_sources.py`), and `preprocessing_fn` bakes
it into the Transform graph as constants, so training, evaluation and serving all join the
same values and a served model needs no side service: a client sends the raw trip, the
graph looks up its date.

Keys are dates (`YYYY-MM-DD`, joined on the UTC calendar date of a Unix-seconds column) or
integers (joined on an integer column as it is). A trip whose key is not in the table, or
has no key, gets `features.MISSING_INT` in every joined column.
"""
import csv
import dataclasses
import datetime
import functools
import io
from typing import Dict, List, Optional, Tuple

import tensorflow as tf

from modules import features

DATE = "date"
INT64 = "int64"
STRING = "string"
SECONDS_PER_DAY = 86400
_EPOCH = datetime.date(1970, 1, 1)
# At most this many problems are listed when a table is refused.
_MAX_PROBLEMS = 10


class ExternalTableError(ValueError):
    """An external table is malformed; the message names the file, line, column and value."""


@dataclasses.dataclass(frozen=True)
class ExternalColumn:
    """A value column of an external table.

    Attributes:
        name: The column's header.
        dtype: INT64 or STRING.
        min_value: Smallest valid value of an INT64 column (None: unbounded).
        max_value: Largest valid value of an INT64 column (None: unbounded).
    """

    name: str
    dtype: str
    min_value: Optional[int] = None
    max_value: Optional[int] = None


@dataclasses.dataclass(frozen=True)
class ExternalTableSpec:
    """What an external table holds and how it joins to a trip.

    Attributes:
        name: The table's name in the pipeline, ML Metadata and the Transform configuration.
        key_column: The header of the key column.
        key_type: DATE or INT64.
        join_feature: The raw trip column the key is matched against: for DATE keys a Unix
            timestamp in seconds, whose UTC calendar date is the key.
        columns: Every value column, in header order.
        joined: The INT64 columns joined onto each trip.
    """

    name: str
    key_column: str
    key_type: str
    join_feature: str
    columns: Tuple[ExternalColumn, ...]
    joined: Tuple[str, ...]

    def __post_init__(self) -> None:
        if self.key_type not in (DATE, INT64):
            raise ValueError(f"external table {self.name!r}: key type {self.key_type!r} is not {DATE!r} or {INT64!r}")
        for column in self.columns:
            if column.dtype not in (INT64, STRING):
                raise ValueError(f"external table {self.name!r}: column {column.name!r} has dtype {column.dtype!r}")
        for name in self.joined:
            column = self.column(name)
            if column.dtype != INT64 or column.min_value is None or column.max_value is None:
                raise ValueError(
                    f"external table {self.name!r}: joined column {name!r} must be {INT64} with a min and a max value"
                )

    @property
    def header(self) -> List[str]:
        """The table's header row."""
        return [self.key_column] + [column.name for column in self.columns]

    def column(self, name: str) -> ExternalColumn:
        """Returns the value column called `name`.

        Raises:
            KeyError: when the spec has no such column.
        """
        for column in self.columns:
            if column.name == name:
                return column
        raise KeyError(f"external table {self.name!r} has no column {name!r}; its columns are {self.header[1:]}")


@dataclasses.dataclass(frozen=True)
class ExternalTable:
    """A validated table: keys ascending (dates as days since 1970-01-01), values in key order."""

    spec: ExternalTableSpec
    keys: Tuple[int, ...]
    values: Dict[str, tuple]

    def key_text(self, key: int) -> str:
        """Writes a key the way the table file does."""
        return (_EPOCH + datetime.timedelta(days=key)).isoformat() if self.spec.key_type == DATE else str(key)


def _joined_column(table: str, name: str) -> ExternalColumn:
    """A joined column whose range, 0 .. size - 1, comes from `features.EXTERNAL_FEATURE_SIZES`."""
    return ExternalColumn(name, INT64, 0, features.EXTERNAL_FEATURE_SIZES[table][name] - 1)


# The US and Illinois public holidays, exported by `python -m pipeline export-holidays`.
# Days of the week count from Monday (0) to Sunday (6), as Python's `date.weekday()` does.
HOLIDAYS = ExternalTableSpec(
    name=features.HOLIDAY_TABLE,
    key_column="date",
    key_type=DATE,
    join_feature=features.TIMESTAMP_KEY,
    columns=(
        _joined_column(features.HOLIDAY_TABLE, "day_of_week"),
        _joined_column(features.HOLIDAY_TABLE, "is_holiday"),
        _joined_column(features.HOLIDAY_TABLE, "is_day_before_holiday"),
        ExternalColumn("holiday_name", STRING),
    ),
    joined=tuple(features.EXTERNAL_FEATURE_SIZES[features.HOLIDAY_TABLE]),
)

# Every table the model's preprocessing joins, by name.
TABLES: Dict[str, ExternalTableSpec] = {HOLIDAYS.name: HOLIDAYS}

# Key of `preprocessing_fn`'s custom_config that maps each table's name to its file; TFX's
# Transform gets it from `pipeline.components.enriching_transform.EnrichingTransform`.
TABLES_CONFIG_KEY = "external_tables"


def _parse_key(text: str, key_type: str) -> int:
    if key_type == DATE:
        if len(text) != 10:
            raise ValueError("not a YYYY-MM-DD date")
        return (datetime.date.fromisoformat(text) - _EPOCH).days
    return int(text)


def parse_table(text: str, spec: ExternalTableSpec, source: str) -> ExternalTable:
    """Validates the CSV text of an external table and returns it ready to join.

    Args:
        text: The whole file.
        spec: What the table must hold.
        source: The file's name, for error messages.

    Returns:
        The table, keys ascending.

    Raises:
        ExternalTableError: when the header differs from the spec, a row has the wrong
            number of fields, a key or value does not parse as its type or is out of its
            range, a key repeats, or the table has no row. Up to ten problems are listed.
    """
    # A byte-order mark, as spreadsheet programs write, is not part of the first header.
    rows = list(csv.reader(io.StringIO(text.lstrip("\ufeff"))))
    if not rows:
        raise ExternalTableError(f"external table {spec.name!r} ({source}) is empty: expected header {spec.header}")
    if rows[0] != spec.header:
        raise ExternalTableError(
            f"external table {spec.name!r} ({source}) has header {rows[0]}, expected {spec.header}"
        )
    problems: List[str] = []
    first_line_of: Dict[int, int] = {}
    parsed: List[Tuple[int, list]] = []
    for line_number, row in enumerate(rows[1:], start=2):
        if len(row) != len(spec.header):
            problems.append(f"line {line_number}: {len(row)} fields, expected {len(spec.header)}")
            continue
        try:
            key = _parse_key(row[0], spec.key_type)
        except ValueError:
            problems.append(f"line {line_number}: column {spec.key_column!r}: {row[0]!r} is not a {spec.key_type}")
            continue
        if key in first_line_of:
            problems.append(
                f"line {line_number}: duplicate key {row[0]!r} in column {spec.key_column!r} "
                f"(first on line {first_line_of[key]})"
            )
            continue
        first_line_of[key] = line_number
        values: list = []
        for column, field in zip(spec.columns, row[1:]):
            if column.dtype == STRING:
                values.append(field)
                continue
            try:
                value = int(field)
            except ValueError:
                problems.append(f"line {line_number}: column {column.name!r}: {field!r} is not an integer")
                break
            if (column.min_value is not None and value < column.min_value) or (
                column.max_value is not None and value > column.max_value
            ):
                problems.append(
                    f"line {line_number}: column {column.name!r}: {value} is outside "
                    f"[{column.min_value}, {column.max_value}]"
                )
                break
            values.append(value)
        else:
            parsed.append((key, values))
    if problems:
        shown = problems[:_MAX_PROBLEMS]
        more = f"\n  ... and {len(problems) - len(shown)} more" if len(problems) > len(shown) else ""
        raise ExternalTableError(
            f"external table {spec.name!r} ({source}) is malformed:\n  " + "\n  ".join(shown) + more
        )
    if not parsed:
        raise ExternalTableError(f"external table {spec.name!r} ({source}) has a header but no rows")
    parsed.sort(key=lambda item: item[0])
    return ExternalTable(
        spec=spec,
        keys=tuple(key for key, _ in parsed),
        values={column.name: tuple(values[index] for _, values in parsed) for index, column in enumerate(spec.columns)},
    )


def read_table(path: str, spec: ExternalTableSpec) -> ExternalTable:
    """Reads and validates an external table file (any path tf.io.gfile reads: local, gs://).

    Args:
        path: The table's file.
        spec: What the table must hold.

    Returns:
        The table, keys ascending.

    Raises:
        ExternalTableError: see `parse_table`.
    """
    with tf.io.gfile.GFile(path, "r") as table_file:
        return _parsed(table_file.read(), spec, path)


# tf.Transform traces `preprocessing_fn` several times a run (each analysis phase, the schema,
# the saved graph), and each trace reads the tables: the same file is parsed once per process.
# The text is part of the key, so a file that changed is parsed (and validated) again.
@functools.lru_cache(maxsize=8)
def _parsed(text: str, spec: ExternalTableSpec, source: str) -> ExternalTable:
    return parse_table(text, spec, source)


def join(key_values: tf.Tensor, present: tf.Tensor, table: ExternalTable) -> Dict[str, tf.Tensor]:
    """Looks up each trip's row of `table`; the table's values become graph constants.

    Args:
        key_values: [batch] int64 values of the spec's `join_feature` (any value where absent).
        present: [batch] bool, False where the trip has no value to join on.
        table: The validated table.

    Returns:
        One [batch] int64 tensor per joined column; `features.MISSING_INT` where the trip has
        no key or its key is not in the table.
    """
    keys = tf.cast(key_values, tf.int64)
    if table.spec.key_type == DATE:
        keys = tf.math.floordiv(keys, SECONDS_PER_DAY)
    table_keys = tf.constant(table.keys, dtype=tf.int64)
    # A sorted-array search rather than a tf.lookup table: plain constants need no resource
    # initialisation in the Transform graph or the served SavedModel.
    position = tf.minimum(tf.searchsorted(table_keys, keys, out_type=tf.int64), len(table.keys) - 1)
    found = tf.logical_and(present, tf.equal(tf.gather(table_keys, position), keys))
    missing = tf.constant(features.MISSING_INT, tf.int64)
    return {
        name: tf.where(found, tf.gather(tf.constant(table.values[name], dtype=tf.int64), position), missing)
        for name in table.spec.joined
    }
