"""Span CSV files in byte ranges, decoded in bulk into the tf.Examples `span_rows` makes.

ExampleGen reads a file as several ranges, so a large file is spread over workers and no
worker holds a whole file. Each range is decoded by pyarrow's CSV reader (C++) and written
as serialized tf.Examples by vectorised numpy/Arrow code, a whole range at a time.

The bulk path must give what the row reader gives (`span_rows.read_rows` then
`span_rows.to_example`), byte for byte: each example is serialized as protobuf's
deterministic serialization writes it (features in name order, an empty cell absent), and
those bytes are what BaseExampleGenExecutor hashes into train and eval. So the bulk path
decodes a range only when it can decide it exactly; otherwise the range is read by the row
reader, whose rows, line numbers and errors are the whole file's:

- A file is split only at newlines before its first double quote: from a quote on, a
  newline may sit inside a quoted cell, so the rest of the file is one range for the row
  reader (it streams; nothing is held whole).
- A range with a NUL byte, a carriage return not followed by a newline, bytes that are not
  UTF-8, or a line longer than the csv module's field limit goes to the row reader.
- Cells: an INT cell must be plain digits with an optional minus ("780.0", " 7", "+7"),
  a FLOAT cell must parse in pyarrow to a finite number within float32 range; any other
  cell sends the range to the row reader, which accepts it or names file, line, column and
  value.
"""
import csv
import dataclasses
import logging
from typing import Callable, Iterator, List, Optional, Sequence, Tuple

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv
import tensorflow as tf
from tensorflow_metadata.proto.v0 import schema_pb2
from tfx_bsl.coders import example_coder

from pipeline.validation import span_rows

logger = logging.getLogger(__name__)

# Why a range was read by the row reader (`read_range`'s on_row_by_row).
ROW_BY_ROW_PLANNED = "ranges_read_row_by_row"
ROW_BY_ROW_FALLBACK = "ranges_fallen_back_to_row_by_row"
# Bytes of CSV per range: about 65,000 trips. Small enough that a range's Arrow table and
# examples stay in the tens of MB, large enough that per-range costs do not matter.
DEFAULT_RANGE_BYTES = 8 * 1024 * 1024

_FLOAT32_MAX = 3.4028234663852886e38
_INT_CELL = "^-?[0-9]+$"
# Field numbers and wire types of tf.train.Example, Features, Feature and the value lists.
_LENGTH_DELIMITED_FIELD_1 = 0x0A
_LENGTH_DELIMITED_FIELD_2 = 0x12
# The value type tfx_bsl's decoder gives each schema type (inside a large_list).
DECODED_TYPES = {schema_pb2.INT: pa.int64(), schema_pb2.FLOAT: pa.float32(), schema_pb2.BYTES: pa.large_binary()}
_FEATURE_LIST_TAG = {schema_pb2.BYTES: 0x0A, schema_pb2.FLOAT: 0x12, schema_pb2.INT: 0x1A}


@dataclasses.dataclass(frozen=True)
class FileRange:
    """Bytes [start, end) of a span CSV file: whole rows, the first on line `first_line`."""

    path: str
    header: Tuple[str, ...]
    start: int
    end: int
    first_line: int
    # True when the range must be read by the row reader (it starts at or before a quote).
    row_by_row: bool = False


def plan_ranges(path: str, range_bytes: int = DEFAULT_RANGE_BYTES) -> List[FileRange]:
    """Returns the ranges of one span CSV file, in file order; reads it once, a range at a time.

    Args:
        path: The file.
        range_bytes: Bytes per range at most (a range ends at the last newline within them).

    Raises:
        CsvFormatError: when the file is empty or its header is malformed (`read_header`).
    """
    header = tuple(span_rows.read_header(path))
    size = tf.io.gfile.stat(path).length
    ranges: List[FileRange] = []
    with tf.io.gfile.GFile(path, "rb") as data_file:
        start, line = len(data_file.readline()), 2
        while start < size:
            data_file.seek(start)
            block = data_file.read(range_bytes)
            quote = block.find(b'"')
            at_end = start + len(block) >= size
            cut = len(block) if at_end and quote < 0 else block.rfind(b"\n", 0, None if quote < 0 else quote) + 1
            if cut > 0:
                ranges.append(FileRange(path, header, start, start + cut, line))
                start, line = start + cut, line + block.count(b"\n", 0, cut)
            if quote >= 0 or cut == 0:
                # A quote (or one line longer than a range): the rest is read row by row.
                ranges.append(FileRange(path, header, start, size, line, row_by_row=True))
                break
    return ranges


def read_range(
    file_range: FileRange, types: span_rows.ColumnTypes, on_row_by_row: Optional[Callable[[str], None]] = None
) -> Iterator[bytes]:
    """Yields the serialized tf.Examples of a range's rows, in order.

    Each equals `span_rows.to_example(row, types).SerializeToString(deterministic=True)`.

    Args:
        file_range: The range, from `plan_ranges`.
        types: The schema's column types.
        on_row_by_row: Called with the reason when the range is read by the row reader,
            `ROW_BY_ROW_PLANNED` (a quote from here on) or `ROW_BY_ROW_FALLBACK` (the bulk
            decoder could not decide it exactly), so a runner can count the slow path.

    Raises:
        CsvFormatError: naming file, line, column and value, for a row the schema refuses.
    """
    if not file_range.row_by_row:
        with tf.io.gfile.GFile(file_range.path, "rb") as data_file:
            data_file.seek(file_range.start)
            data = data_file.read(file_range.end - file_range.start)
        examples = decode_in_bulk(data, file_range.header, types)
        del data
        if examples is not None:
            yield from examples
            return
        reason = ROW_BY_ROW_FALLBACK
        # About eight times slower than the bulk path: worth a line in the log.
        logger.info("%s from line %d: read row by row, the bulk decoder could not decide every cell exactly", file_range.path, file_range.first_line)
    else:
        reason = ROW_BY_ROW_PLANNED
    if on_row_by_row is not None:
        on_row_by_row(reason)
    yield from read_row_by_row(file_range, types)


def read_range_columns(file_range: FileRange, columns: Sequence[str], types: span_rows.ColumnTypes) -> pa.RecordBatch:
    """Reads some columns of a range's rows, as tfx_bsl's decoder gives them from the
    tf.Examples `read_range` yields: a large_list of int64, float32 or large_binary per column,
    one value per row, null for an empty cell or a column the file lacks.

    Plain ranges are read for those columns alone (the bulk path's checks, column by column);
    a range or column the bulk path cannot decide exactly is read through `read_range`.

    Raises:
        CsvFormatError: naming file, line, column and value, for a row the schema refuses
            (only where the range is read through `read_range`).
    """
    columns = list(columns)
    if not file_range.row_by_row:
        with tf.io.gfile.GFile(file_range.path, "rb") as data_file:
            data_file.seek(file_range.start)
            data = data_file.read(file_range.end - file_range.start)
        arrays = _columns_in_bulk(data, file_range.header, columns, types)
        del data
        if arrays is not None:
            return pa.RecordBatch.from_arrays(arrays, columns)
    decoded = example_coder.ExamplesToRecordBatchDecoder().DecodeBatch(list(read_range(file_range, types)))
    arrays = []
    for name in columns:
        index = decoded.schema.get_field_index(name)
        arrays.append(decoded.column(index) if index >= 0 else pa.nulls(decoded.num_rows, type=pa.large_list(DECODED_TYPES[types.get(name, schema_pb2.BYTES)])))
    return pa.RecordBatch.from_arrays(arrays, columns)


def _columns_in_bulk(data: bytes, header: Sequence[str], columns: Sequence[str], types: span_rows.ColumnTypes) -> Optional[List[pa.Array]]:
    """The columns of plain CSV rows as one-value lists, or None when a cell is not plainly of
    its type (the same checks as `decode_in_bulk`'s)."""
    table = _plain_table(data, header, [name for name in columns if name in header], types)
    if table is None:
        return None
    arrays = []
    for name in columns:
        kind = types.get(name, schema_pb2.BYTES)
        if name not in header:
            arrays.append(pa.nulls(table.num_rows, type=pa.large_list(DECODED_TYPES[kind])))
            continue
        column = table.column(name).combine_chunks()
        values = column.cast(pa.large_binary()) if kind == schema_pb2.BYTES else _typed_values(column, kind)
        if values is None:
            return None
        arrays.append(one_value_lists(values))
    return arrays


def _plain_table(data: bytes, header: Sequence[str], columns: Sequence[str], types: span_rows.ColumnTypes) -> Optional[pa.Table]:
    """`columns` of plain CSV rows as pyarrow's reader gives them (FLOAT columns as float64,
    the others as binary; an empty cell null), or None when the bytes are not plain text or
    the reader refuses them."""
    if not _plain_text(data):
        return None
    arrow_types = {name: pa.float64() if types.get(name, schema_pb2.BYTES) == schema_pb2.FLOAT else pa.binary() for name in columns}
    try:
        return pa_csv.read_csv(
            pa.py_buffer(data),
            read_options=pa_csv.ReadOptions(column_names=list(header)),
            parse_options=pa_csv.ParseOptions(quote_char=False, ignore_empty_lines=True),
            convert_options=pa_csv.ConvertOptions(
                column_types=arrow_types, null_values=[""], strings_can_be_null=True, include_columns=list(columns)
            ),
        )
    except pa.ArrowInvalid:
        return None


def one_value_lists(values: pa.Array) -> pa.Array:
    """One-value lists of the values, as tfx_bsl's decoder gives a column; a null value is a
    null list, as the decoder gives an absent feature."""
    valid = values.is_valid().to_numpy(zero_copy_only=False)
    offsets = np.zeros(len(values) + 1, dtype=np.int64)
    np.cumsum(valid, out=offsets[1:])
    # A null offset makes a null list.
    return pa.LargeListArray.from_arrays(pa.array(offsets, pa.int64(), mask=np.append(~valid, False)), values.drop_null())


def _typed_values(column: pa.Array, kind: int) -> Optional[pa.Array]:
    """An INT or FLOAT column's cells as int64 or float32 (null for an empty cell); None when a
    cell is not plainly of its type."""
    if kind == schema_pb2.INT:
        present = column.drop_null()
        if len(present) and not pc.all(pc.match_substring_regex(present, _INT_CELL)).as_py():
            return None
        try:
            return pc.cast(column, pa.int64())
        except pa.ArrowInvalid:  # outside 64 bits
            return None
    values = column.fill_null(0.0).to_numpy()
    if not np.all(np.isfinite(values)) or np.any(np.abs(values) > _FLOAT32_MAX):
        return None
    return pc.cast(column, pa.float32())


def read_row_by_row(file_range: FileRange, types: span_rows.ColumnTypes) -> Iterator[bytes]:
    """Yields a range's serialized tf.Examples read by the row reader (exact for any input)."""
    rows = span_rows.read_rows_in_range(
        file_range.path, file_range.header, types, file_range.start, file_range.end, file_range.first_line
    )
    for _, row in rows:
        yield span_rows.to_example(row, types).SerializeToString(deterministic=True)


def decode_in_bulk(data: bytes, header: Sequence[str], types: span_rows.ColumnTypes) -> Optional[List[bytes]]:
    """Returns the serialized tf.Examples of CSV rows without quotes, or None when the bulk
    path cannot decide them exactly (the row reader must read them).

    Args:
        data: Whole rows of a span CSV file (no header, no double quote).
        header: The file's column names.
        types: Column types from the schema.
    """
    table = _plain_table(data, header, header, types)
    if table is None:
        return None
    segments = []
    for name in sorted(header):
        kind = types.get(name, schema_pb2.BYTES)
        column = table.column(name).combine_chunks()
        payload = _payload(column, kind)
        if payload is None:
            return None
        segments.append(_feature_entries(name, kind, payload))
    if not segments or table.num_rows == 0:
        return [] if table.num_rows == 0 else None
    features = pc.binary_join_element_wise(*segments, b"", null_handling="skip")
    lengths = pc.binary_length(features).to_numpy(zero_copy_only=False)
    # An example with no feature at all serializes to no bytes, as an empty message does.
    prefixes = _by_length(lengths, lambda length: bytes([_LENGTH_DELIMITED_FIELD_1]) + _varint(length) if length else b"")
    return pc.binary_join_element_wise(prefixes, features, b"").to_pylist()


def _plain_text(data: bytes) -> bool:
    """Whether the bulk reader reads these bytes exactly as the csv module would."""
    if b"\0" in data or data.count(b"\r") != data.count(b"\r\n"):
        return False
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    if len(data) > csv.field_size_limit():
        newlines = np.flatnonzero(np.frombuffer(data, dtype=np.uint8) == ord("\n"))
        edges = np.concatenate([[-1], newlines, [len(data)]])
        if np.max(np.diff(edges)) > csv.field_size_limit():
            return False
    return True


def _payload(column: pa.Array, kind: int) -> Optional[pa.Array]:
    """The bytes inside each cell's value list (a varint, a float32 or the string), null for
    an empty cell; None when a cell is not plainly of its type (`_typed_values`)."""
    if kind == schema_pb2.BYTES:
        return column
    values = _typed_values(column, kind)
    if values is None:
        return None
    valid = column.is_valid().to_numpy(zero_copy_only=False)
    if kind == schema_pb2.INT:
        return _varints(values.fill_null(0).to_numpy().view(np.uint64), valid)
    as_bytes = values.fill_null(0.0).to_numpy().astype("<f4").view(np.uint8).reshape(-1, 4)
    return _binary(as_bytes, np.where(valid, 4, 0), valid)


def _varints(values: np.ndarray, valid: np.ndarray) -> pa.Array:
    """Base-128 varints of unsigned 64-bit values (protobuf's int64 encoding), as binary."""
    sizes = np.ones(len(values), dtype=np.int64)
    for group in range(1, 10):
        sizes += values >= np.uint64(1 << (7 * group))
    table = np.empty((len(values), 10), dtype=np.uint8)
    for group in range(10):
        more = (group < sizes - 1).astype(np.uint8) << 7
        table[:, group] = ((values >> np.uint64(7 * group)) & np.uint64(0x7F)).astype(np.uint8) | more
    return _binary(table, np.where(valid, sizes, 0), valid)


def _binary(table: np.ndarray, sizes: np.ndarray, valid: np.ndarray) -> pa.Array:
    """A binary array of each row's first `sizes` bytes of `table`, null where not valid."""
    data = table[np.arange(table.shape[1]) < sizes[:, None]]
    offsets = np.zeros(len(sizes) + 1, dtype=np.int32)
    np.cumsum(sizes, out=offsets[1:])
    validity = None if valid.all() else pa.array(valid, type=pa.bool_()).buffers()[1]
    return pa.Array.from_buffers(pa.binary(), len(sizes), [validity, pa.py_buffer(offsets), pa.py_buffer(data)])


def _feature_entries(name: str, kind: int, payload: pa.Array) -> pa.Array:
    """Each row's Features map entry for the column (key and Feature), null for an empty cell."""
    key = name.encode("utf-8")
    tag = _FEATURE_LIST_TAG[kind]

    def entry_prefix(size: int) -> bytes:
        value_list = bytes([_LENGTH_DELIMITED_FIELD_1]) + _varint(size)  # the value list's one field
        feature = bytes([tag]) + _varint(len(value_list) + size) + value_list
        entry_value = bytes([_LENGTH_DELIMITED_FIELD_2]) + _varint(len(feature) + size) + feature
        entry = bytes([_LENGTH_DELIMITED_FIELD_1]) + _varint(len(key)) + key + entry_value
        return bytes([_LENGTH_DELIMITED_FIELD_1]) + _varint(len(entry) + size) + entry

    sizes = pc.binary_length(payload).fill_null(0).to_numpy(zero_copy_only=False)
    prefixes = _by_length(sizes, entry_prefix)
    return pc.binary_join_element_wise(prefixes, payload, b"")


def _by_length(sizes: np.ndarray, prefix_of) -> pa.Array:
    """The prefix of each row, made once per distinct size."""
    distinct, index = np.unique(sizes, return_inverse=True)
    return pa.array([prefix_of(int(size)) for size in distinct], type=pa.binary()).take(pa.array(index))


def _varint(value: int) -> bytes:
    """The base-128 varint of a non-negative int."""
    out = bytearray()
    while True:
        low, value = value & 0x7F, value >> 7
        if value:
            out.append(low | 0x80)
        else:
            out.append(low)
            return bytes(out)

