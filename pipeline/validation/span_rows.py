"""The one reader of span CSV files: rows typed by the curated schema, an empty cell absent.

ExampleGen writes what this reader returns as tf.Examples, and the data checks compute their
statistics from the same rows, so the checks judge exactly what the model trains on.

- Types come from the schema, never from the data: a FLOAT column whose cells happen to be
  whole numbers stays FLOAT. An INT cell may be written as a whole float ("780.0").
- An empty cell is an absent value (`None`), as tfx_bsl's CSV decoder makes it: the
  tf.Example has no such feature, so TFDV counts it as missing.
- A cell that does not parse as its column's type, or a non-finite number (NaN, inf), is a
  `CsvFormatError` naming the file, line, column and value.
- Quoted cells may span lines (the `csv` module's rules); line numbers are those of the file.
- Files are UTF-8 (a leading byte order mark is dropped); other bytes are an error naming the
  file, line and byte offset. Columns are read by name, so files may order them differently.
"""
import csv
import math
import os
from typing import Dict, Iterable, Iterator, List, Optional, Sequence, Tuple, Union

import pyarrow as pa
import tensorflow as tf
from tensorflow_metadata.proto.v0 import schema_pb2

from pipeline.spans import span_of_folder

Value = Union[int, float, bytes]
# A column's type: schema_pb2.INT, FLOAT or BYTES. A column the schema lacks is read as BYTES,
# so TFDV reports it as a column the schema does not know.
ColumnTypes = Dict[str, int]

_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1
_FLOAT32_MAX = 3.4028234663852886e38
_TYPE_NAMES = {schema_pb2.INT: "INT", schema_pb2.FLOAT: "FLOAT", schema_pb2.BYTES: "BYTES"}


class CsvFormatError(ValueError):
    """A CSV file of a span is malformed; the message names file, line, column and value."""


def column_types(schema: schema_pb2.Schema) -> ColumnTypes:
    """Returns each schema column's type (schema_pb2.INT, FLOAT or BYTES)."""
    return {feature.name: feature.type for feature in schema.feature}


def read_header(path: str) -> List[str]:
    """Returns the column names of a span CSV file's header row.

    Raises:
        CsvFormatError: when the file is empty or its header names a column twice or not at all.
    """
    if tf.io.gfile.isdir(path):
        raise CsvFormatError(f"{path}: is a folder, not a CSV file")
    with tf.io.gfile.GFile(path, "rb") as data_file:
        first_line = next(_text_lines(path, data_file), (0, ""))[1]
    if not first_line.strip():
        raise CsvFormatError(f"{path}: the file is empty; a span CSV starts with a header row")
    header = next(csv.reader([first_line]))
    unnamed = [index + 1 for index, name in enumerate(header) if not name.strip()]
    if unnamed:
        raise CsvFormatError(f"{path}, line 1: header cell(s) {unnamed} name no column")
    repeated = sorted({name for name in header if header.count(name) > 1})
    if repeated:
        raise CsvFormatError(f"{path}, line 1: the header names column(s) {repeated} more than once")
    return header


def _text_lines(path: str, binary_lines: Iterable[bytes], first_line: int = 1, first_offset: int = 0) -> Iterator[Tuple[int, str]]:
    """Yields (line number, text) of binary lines decoded as UTF-8, a leading BOM dropped.

    Args:
        path: The file the lines come from, for messages.
        binary_lines: The file's lines, from `first_line` on.
        first_line: The file's line number of the first line.
        first_offset: The file's byte offset of the first line.

    Raises:
        CsvFormatError: at the first bytes that are not UTF-8, naming line and byte offset.
    """
    offset = first_offset
    for number, raw in enumerate(binary_lines, start=first_line):
        if number == 1 and raw.startswith(b"\xef\xbb\xbf"):
            raw, offset = raw[3:], offset + 3
        try:
            yield number, raw.decode("utf-8")
        except UnicodeDecodeError as error:
            raise CsvFormatError(
                f"{path}, line {number}: bytes that are not UTF-8 at byte offset {offset + error.start} "
                f"({raw[error.start:error.start + 8]!r}); span files are UTF-8 text"
            ) from None
        offset += len(raw)


def parse_cell(cell: str, column_type: int) -> Optional[Value]:
    """Parses one cell as its schema type; an empty cell is None.

    Raises:
        ValueError: when the cell is not a number of the type, or not finite.
    """
    if cell == "":
        return None
    if column_type == schema_pb2.BYTES:
        return cell.encode("utf-8")
    if "_" in cell:
        raise ValueError("digits grouped with '_'")
    if column_type == schema_pb2.INT:
        try:
            whole = int(cell)
        except ValueError:
            number = float(cell)  # raises for text that is no number at all
            if not number.is_integer():
                raise ValueError("not a whole number") from None
            whole = int(number)
        if not _INT64_MIN <= whole <= _INT64_MAX:
            raise ValueError("outside the 64-bit integer range")
        return whole
    number = float(cell)
    if not math.isfinite(number):
        raise ValueError("not a finite number")
    if abs(number) > _FLOAT32_MAX:
        raise ValueError("too large for a 32-bit float")
    return number


def read_rows(path: str, header: Sequence[str], types: ColumnTypes) -> Iterator[Tuple[int, Dict[str, Optional[Value]]]]:
    """Yields (line number, {column: value or None}) for each data row of a span CSV file.

    Args:
        path: The file (any path tf.io.gfile reads); its header must equal `header`.
        header: The file's column names, from `read_header`.
        types: Column types from the schema (`column_types`).

    Raises:
        CsvFormatError: for a row with the wrong number of cells or a cell that does not parse.
    """
    with tf.io.gfile.GFile(path, "rb") as data_file:
        yield from _parse_rows(path, header, types, _text_lines(path, data_file), first_line=1, has_header=True)


def read_rows_in_range(
    path: str, header: Sequence[str], types: ColumnTypes, start: int, end: int, first_line: int
) -> Iterator[Tuple[int, Dict[str, Optional[Value]]]]:
    """Yields the rows of bytes [start, end) of a span CSV file, as `read_rows` does.

    ExampleGen reads a file in ranges (`pipeline.validation.span_chunks`); a range it cannot
    decode in bulk is read here, so its rows, line numbers and errors are the whole file's.

    Args:
        path: The file.
        header: The file's column names, from `read_header`.
        types: Column types from the schema (`column_types`).
        start: Byte offset of the range's first row: just after a newline outside quotes.
        end: Byte offset just after the range's last row (or the file's size).
        first_line: The file's line number of the row at `start`.

    Raises:
        CsvFormatError: as `read_rows`.
    """
    with tf.io.gfile.GFile(path, "rb") as data_file:
        data_file.seek(start)
        lines = _text_lines(path, _lines_until(data_file, end - start), first_line, start)
        yield from _parse_rows(path, header, types, lines, first_line, has_header=False)


def _lines_until(binary_file, size: int) -> Iterator[bytes]:
    """Yields the lines of the next `size` bytes of a binary file (the last one cut at `size`)."""
    while size > 0:
        line = binary_file.readline()
        if not line:
            return
        line = line[:size]
        size -= len(line)
        yield line


def _parse_rows(
    path: str,
    header: Sequence[str],
    types: ColumnTypes,
    lines: Iterator[Tuple[int, str]],
    first_line: int,
    has_header: bool,
) -> Iterator[Tuple[int, Dict[str, Optional[Value]]]]:
    """Yields (line number, row) of CSV text lines that start at the file's line `first_line`."""
    kinds = [types.get(name, schema_pb2.BYTES) for name in header]
    # The csv module counts the lines it consumed; the file's number is that plus the lines before.
    lines_before = first_line - 1
    reader = csv.reader((text for _, text in lines), strict=True)
    try:
        if has_header:
            next(reader)  # the header, already read
        row_start = lines_before + reader.line_num + 1
        for cells in reader:
            line, row_start = row_start, lines_before + reader.line_num + 1
            if not cells:
                continue
            if len(cells) != len(header):
                raise CsvFormatError(
                    f"{path}, line {line}: {len(cells)} cells where the header has {len(header)} "
                    f"({', '.join(header)})"
                )
            row = {}
            for name, kind, cell in zip(header, kinds, cells):
                try:
                    row[name] = parse_cell(cell, kind)
                except ValueError as error:
                    raise CsvFormatError(
                        f"{path}, line {line}, column {name!r}: value {cell!r} is not a valid "
                        f"{_TYPE_NAMES[kind]} ({error}); the schema types {name} as {_TYPE_NAMES[kind]}"
                    ) from None
            yield line, row
    except csv.Error as error:
        raise CsvFormatError(f"{path}, line {lines_before + reader.line_num}: {error}") from None


def to_example(row: Dict[str, Optional[Value]], types: ColumnTypes) -> tf.train.Example:
    """Returns the tf.Example of one row: one value per present column, absent columns left out."""
    example = tf.train.Example()
    for name, value in row.items():
        if value is None:
            continue
        kind = types.get(name, schema_pb2.BYTES)
        feature = example.features.feature[name]
        if kind == schema_pb2.INT:
            feature.int64_list.value.append(value)
        elif kind == schema_pb2.FLOAT:
            feature.float_list.value.append(value)
        else:
            feature.bytes_list.value.append(value)
    return example


_ARROW_TYPES = {schema_pb2.INT: pa.int64(), schema_pb2.FLOAT: pa.float32(), schema_pb2.BYTES: pa.binary()}


def to_record_batch(rows: Sequence[Dict[str, Optional[Value]]], header: Sequence[str], types: ColumnTypes) -> pa.RecordBatch:
    """Returns rows as the Arrow RecordBatch TFDV computes statistics on: a list column per
    feature, null where the cell was empty (as tfx_bsl decodes a tf.Example without it)."""
    arrays = []
    for name in header:
        kind = types.get(name, schema_pb2.BYTES)
        # A column a file lacks is missing in each of its rows.
        values = [None if row.get(name) is None else [row[name]] for row in rows]
        arrays.append(pa.array(values, type=pa.list_(_ARROW_TYPES[kind])))
    return pa.RecordBatch.from_arrays(arrays, list(header))


def window_files(input_base: str, split_pattern: str, first_span: int, last_span: int) -> Dict[int, List[str]]:
    """Returns the CSV files matching `split_pattern` under `input_base`, by span, for spans in
    [first_span, last_span].

    Raises:
        CsvFormatError: when a span of the range has no file.
    """
    files_by_span: Dict[int, List[str]] = {}
    for path in sorted(tf.io.gfile.glob(os.path.join(input_base, split_pattern))):
        span = span_of_folder(os.path.basename(os.path.dirname(path)))
        if span is not None and first_span <= span <= last_span:
            files_by_span.setdefault(span, []).append(path)
    missing = [span for span in range(first_span, last_span + 1) if span not in files_by_span]
    if missing:
        raise CsvFormatError(f"no CSV file for span(s) {missing} under {input_base!r}")
    return files_by_span


def common_header(files: List[str]) -> List[str]:
    """Returns every column any of the files has: the first file's in its order, then the others'.

    Files are read by column name, so another order is fine, and a column a file lacks is
    missing in each of its rows: the data checks judge that (a column that stops being filled is
    a completeness anomaly naming it, a column the schema does not know a new-column anomaly),
    so an owner can review and accept it like any other change.

    Raises:
        CsvFormatError: when a file is empty or its header is malformed.
    """
    column_names = read_header(files[0])
    for path in files[1:]:
        column_names += [name for name in read_header(path) if name not in column_names]
    return column_names


def from_example(example: tf.train.Example) -> Dict[str, Optional[Value]]:
    """Returns the row of a tf.Example `to_example` wrote: each feature's first value, strings
    decoded; a feature without a value is None."""
    row: Dict[str, Optional[Value]] = {}
    for name, feature in example.features.feature.items():
        kind = feature.WhichOneof("kind")
        values = list(getattr(feature, kind).value) if kind else []
        value = values[0] if values else None
        row[name] = value.decode() if isinstance(value, bytes) else value
    return row


def typed_row(row: Dict[str, Optional[Value]], types: ColumnTypes) -> Dict[str, Optional[Value]]:
    """The row with each value in its column's schema type, for rows whose values took their
    type from elsewhere (a JSON request: `"fare": 7` is an int, `7.25` a float).

    An int in a FLOAT column becomes a float, a whole float in an INT column an int, a string in
    a BYTES column UTF-8 bytes; a column the schema lacks keeps its value.

    Raises:
        ValueError: naming the column and the value when a value has no form of its type.
    """
    typed: Dict[str, Optional[Value]] = {}
    for name, value in row.items():
        kind = types.get(name)
        if value is None or kind is None:
            typed[name] = value
        elif kind == schema_pb2.FLOAT and isinstance(value, (int, float)) and not isinstance(value, bool):
            typed[name] = float(value)
        elif kind == schema_pb2.INT and isinstance(value, int) and not isinstance(value, bool):
            typed[name] = value
        elif kind == schema_pb2.INT and isinstance(value, float) and value.is_integer():
            typed[name] = int(value)
        elif kind == schema_pb2.BYTES and isinstance(value, (str, bytes)):
            typed[name] = value.encode("utf-8") if isinstance(value, str) else value
        else:
            raise ValueError(f"column {name!r}: value {value!r} is not a {_TYPE_NAMES.get(kind, kind)}")
    return typed
