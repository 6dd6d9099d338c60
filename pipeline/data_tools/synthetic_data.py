"""Synthetic taxi trips at any row count, resampled from the shipped spans.

Each output span is drawn with replacement from the same source span (so each year keeps
its own mix of payment types, companies, hours and areas), and every drawn trip gets a
little noise:

* `fare` and `tips` are scaled by the same random factor, so the tip's share of the fare,
  hence the big-tipper label, is what the source trip had, except where rounding each to whole
  cents moves a tip across the 20 % line (about 0.5 % of trips, mostly tips of exactly 20 %);
* `trip_miles` and `trip_seconds` get their own multiplicative jitter, correlated with the
  fare's (a dearer ride is a longer one);
* every other column, including every empty cell (missing value), is copied unchanged.

The output is deterministic: the same source files, row count and seed give the same bytes.
"""
import csv
import dataclasses
import os
from typing import Dict, List, Sequence

import numpy as np

from pipeline import configs
from pipeline.spans import discover_spans

# Columns that get multiplicative noise, with how they are written.
FARE_KEY = "fare"
TIPS_KEY = "tips"
MILES_KEY = "trip_miles"
SECONDS_KEY = "trip_seconds"
JITTERED_KEYS = (FARE_KEY, TIPS_KEY, MILES_KEY, SECONDS_KEY)
# Log-normal spread of the fare factor, and of the miles/seconds factors around it.
FARE_SIGMA = 0.08
TRIP_SIGMA = 0.05
# The schema's upper bounds (pipeline/schema/schema.pbtxt): noise never pushes a value past them.
UPPER_BOUNDS = {FARE_KEY: 10000.0, TIPS_KEY: 10000.0, MILES_KEY: 5000.0, SECONDS_KEY: 86400.0}
FILE_NAME_FORMAT = "data-{:05d}.csv"


class SyntheticDataError(ValueError):
    """The generator's input or request is unusable; the message names what is at fault."""


@dataclasses.dataclass(frozen=True)
class SpanSource:
    """The trips of one source span, as CSV cells (strings; "" is a missing value)."""

    span: int
    header: List[str]
    columns: Dict[str, np.ndarray]

    @property
    def row_count(self) -> int:
        return len(next(iter(self.columns.values())))


def read_span(data_root: str, span: int) -> SpanSource:
    """Reads every CSV file of `data_root/span-<span>/` into columns of strings.

    Raises:
        SyntheticDataError: when the files disagree on the header, miss a jittered column or
            hold no row.
    """
    folder = os.path.join(data_root, f"{configs.SPAN_FOLDER_PREFIX}{span}")
    header: List[str] = []
    rows: List[List[str]] = []
    for name in sorted(os.listdir(folder)):
        if not name.endswith(configs.SPAN_FILE_PATTERN.lstrip("*")):
            continue
        path = os.path.join(folder, name)
        with open(path, newline="") as data_file:
            reader = csv.reader(data_file)
            file_header = next(reader, [])
            if header and file_header != header:
                raise SyntheticDataError(f"{path}: header differs from the other files of span {span}")
            header = file_header
            rows.extend(row for row in reader if row)
    missing = [key for key in JITTERED_KEYS if key not in header]
    if missing:
        raise SyntheticDataError(f"span folder {folder!r}: no column {', '.join(missing)} in the header {header}")
    if not rows:
        raise SyntheticDataError(f"span folder {folder!r} holds no trip")
    table = np.array(rows, dtype=object)
    return SpanSource(span=span, header=header, columns={key: table[:, index] for index, key in enumerate(header)})


def split_rows(total_rows: int, weights: Sequence[int]) -> List[int]:
    """Splits `total_rows` in proportion to `weights`, largest remainders first; sums exactly."""
    weights_array = np.asarray(weights, dtype=float)
    shares = total_rows * weights_array / weights_array.sum()
    counts = np.floor(shares).astype(int)
    for index in np.argsort(-(shares - counts), kind="stable")[: total_rows - counts.sum()]:
        counts[index] += 1
    return counts.tolist()


def _to_float(cells: np.ndarray) -> np.ndarray:
    """Returns the cells as floats, NaN where empty."""
    return np.array([float(cell) if cell else np.nan for cell in cells], dtype=float)


def _format(values: np.ndarray, decimals: int) -> np.ndarray:
    """Returns values as CSV cells with fixed decimals ("" for NaN)."""
    text = np.char.mod(f"%.{decimals}f", np.nan_to_num(values))
    return np.where(np.isnan(values), "", text).astype(object)


def synthesize(source: SpanSource, row_count: int, rng: np.random.Generator) -> Dict[str, np.ndarray]:
    """Draws `row_count` noisy trips from `source`; returns the columns as CSV cells."""
    picks = rng.integers(0, source.row_count, size=row_count)
    fare_factor = np.exp(rng.normal(0.0, FARE_SIGMA, size=row_count))
    miles_factor = fare_factor * np.exp(rng.normal(0.0, TRIP_SIGMA, size=row_count))
    seconds_factor = fare_factor * np.exp(rng.normal(0.0, TRIP_SIGMA, size=row_count))
    columns = {key: cells[picks] for key, cells in source.columns.items()}

    def jitter(key: str, factor: np.ndarray) -> np.ndarray:
        return np.minimum(_to_float(columns[key]) * factor, UPPER_BOUNDS[key])

    columns[FARE_KEY] = _format(jitter(FARE_KEY, fare_factor), 2)
    # The same factor as the fare: the tip's share of the fare, hence the label, is kept.
    columns[TIPS_KEY] = _format(jitter(TIPS_KEY, fare_factor), 2)
    columns[MILES_KEY] = _format(jitter(MILES_KEY, miles_factor), 2)
    columns[SECONDS_KEY] = _format(np.round(jitter(SECONDS_KEY, seconds_factor)), 0)
    return columns


def generate(
    source_root: str, output_root: str, total_rows: int, seed: int = 0, rows_per_file: int = 250_000
) -> Dict[int, List[str]]:
    """Writes `total_rows` synthetic trips under `output_root/span-<N>/data-*.csv`.

    Rows are shared between the source's spans in proportion to their sizes; each output span
    is drawn from its own source span.

    Args:
        source_root: A data root of span folders, e.g. the shipped `data/`.
        output_root: Where to write; must not hold span folders already.
        total_rows: Trips to write in all (at least one per span).
        seed: Seed of the random draws; the same seed gives the same files.
        rows_per_file: Trips per CSV file at most.

    Returns:
        The written files by span.

    Raises:
        SyntheticDataError: on a bad count, an output root that already holds spans, or
            unusable source files.
        pipeline.spans.SpanError: when `source_root` holds no span.
    """
    if rows_per_file < 1:
        raise SyntheticDataError(f"rows_per_file must be at least 1, got {rows_per_file}")
    spans = discover_spans(source_root)
    if total_rows < len(spans):
        raise SyntheticDataError(f"total_rows must be at least the number of spans ({len(spans)}), got {total_rows}")
    if os.path.isdir(output_root) and any(name.startswith(configs.SPAN_FOLDER_PREFIX) for name in os.listdir(output_root)):
        raise SyntheticDataError(f"output root {output_root!r} already holds span folders; choose an empty folder")
    sources = [read_span(source_root, span) for span in spans]
    written: Dict[int, List[str]] = {}
    for source, row_count in zip(sources, split_rows(total_rows, [source.row_count for source in sources])):
        # One generator per span, so a span's trips do not depend on the other spans' sizes.
        rng = np.random.default_rng([seed, source.span])
        columns = synthesize(source, row_count, rng)
        folder = os.path.join(output_root, f"{configs.SPAN_FOLDER_PREFIX}{source.span}")
        os.makedirs(folder)
        written[source.span] = []
        for file_index, start in enumerate(range(0, row_count, rows_per_file)):
            path = os.path.join(folder, FILE_NAME_FORMAT.format(file_index))
            stop = min(start + rows_per_file, row_count)
            with open(path, "w", newline="") as data_file:
                writer = csv.writer(data_file, lineterminator="\n")
                writer.writerow(source.header)
                writer.writerows(zip(*(columns[key][start:stop] for key in source.header)))
            written[source.span].append(path)
    return written
