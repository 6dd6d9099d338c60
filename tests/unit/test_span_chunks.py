"""ExampleGen's range reader: the same example bytes as the row reader, and the same errors."""
import csv

import pyarrow as pa
import pytest
import tensorflow_data_validation as tfdv

from pipeline.validation import span_chunks, span_rows
from tests.conftest import DATA_ROOT, SCHEMA_PATH, read_csv_header, trip, write_csv


@pytest.fixture(scope="module")
def types():
    return span_rows.column_types(tfdv.load_schema_text(str(SCHEMA_PATH)))


def _row_reader(path, types):
    rows = span_rows.read_rows(str(path), span_rows.read_header(str(path)), types)
    return [span_rows.to_example(row, types).SerializeToString(deterministic=True) for _, row in rows]


def _range_reader(path, types, range_bytes=span_chunks.DEFAULT_RANGE_BYTES):
    ranges = span_chunks.plan_ranges(str(path), range_bytes)
    return ranges, [example for file_range in ranges for example in span_chunks.read_range(file_range, types)]


@pytest.mark.parametrize("span", [1, 2, 3, 4])
def test_shipped_spans_give_the_row_reader_s_bytes_in_bulk(types, span):
    # The bytes are what BaseExampleGenExecutor hashes into train and eval: equal bytes, same split.
    path = DATA_ROOT / f"span-{span}" / "data.csv"
    ranges, examples = _range_reader(path, types, range_bytes=64 * 1024)
    assert len(ranges) > 1 and not any(file_range.row_by_row for file_range in ranges)
    # Every range decodes in bulk: None would mean the row reader did it.
    for file_range in ranges:
        with open(file_range.path, "rb") as data_file:
            data_file.seek(file_range.start)
            assert span_chunks.decode_in_bulk(data_file.read(file_range.end - file_range.start), file_range.header, types) is not None
    assert examples == _row_reader(path, types)


def test_ranges_cover_the_file_in_whole_lines_with_their_line_numbers(tmp_path, types):
    path = write_csv(tmp_path / "data.csv", [trip(fare=float(i)) for i in range(50)])
    ranges = span_chunks.plan_ranges(str(path), 300)
    content = path.read_bytes()
    assert ranges[0].start == content.index(b"\n") + 1 and ranges[-1].end == len(content)
    assert len(ranges) > 5
    for before, after in zip(ranges, ranges[1:]):
        assert before.end == after.start and content[before.end - 1:before.end] == b"\n"
    assert [r.first_line for r in ranges] == [content[: r.start].count(b"\n") + 1 for r in ranges]


@pytest.mark.parametrize(
    "overrides",
    [
        {"company": None, "dropoff_latitude": None},
        {"trip_seconds": "780.0"},  # a whole float in an INT column: the row reader's rule
        {"trip_seconds": " 780"},
        {"trip_seconds": "+780"},
        {"fare": "1e-45"},
        {"fare": "-0"},
        {"fare": "3.4028234e38"},
        {"trip_start_timestamp": -5},
        {"dropoff_census_tract": 9223372036854775807},
        {"company": "Café ünïcode Cab"},
        {"company": "12"},
    ],
)
def test_unusual_cells_give_the_row_reader_s_bytes(tmp_path, types, overrides):
    path = write_csv(tmp_path / "data.csv", [trip(), trip(**overrides), trip()])
    assert _range_reader(path, types)[1] == _row_reader(path, types)


@pytest.mark.parametrize(
    "overrides, column, value",
    [
        ({"trip_seconds": "0x10"}, "trip_seconds", "0x10"),  # pyarrow would read 16
        ({"fare": "nan(1)"}, "fare", "nan(1)"),  # pyarrow would read NaN
        ({"fare": "NaN"}, "fare", "NaN"),
        ({"trip_miles": "inf"}, "trip_miles", "inf"),
        ({"fare": "1e39"}, "fare", "1e39"),
        ({"trip_seconds": "1_000"}, "trip_seconds", "1_000"),
        ({"trip_seconds": "780.5"}, "trip_seconds", "780.5"),
        ({"dropoff_census_tract": "99999999999999999999"}, "dropoff_census_tract", "99999999999999999999"),
        ({"trip_start_hour": "seven"}, "trip_start_hour", "seven"),
    ],
)
def test_a_bad_cell_in_any_range_names_file_line_column_and_value(tmp_path, types, overrides, column, value):
    rows = [trip() for _ in range(40)]
    rows[30] = trip(**overrides)
    path = write_csv(tmp_path / "data.csv", rows)
    ranges = span_chunks.plan_ranges(str(path), 1000)
    assert len(ranges) > 3
    with pytest.raises(span_rows.CsvFormatError) as raised:
        [example for file_range in ranges for example in span_chunks.read_range(file_range, types)]
    assert f"{path}, line 32, column {column!r}: value {value!r}" in str(raised.value)


def test_bytes_that_are_not_utf8_are_named_with_the_file_s_line_and_offset(tmp_path, types):
    path = write_csv(tmp_path / "data.csv", [trip() for _ in range(30)])
    content = path.read_bytes()
    offset = content.index(b"Credit Card", len(content) // 2)
    path.write_bytes(content[:offset] + b"\xff" + content[offset + 1:])
    line = content[:offset].count(b"\n") + 1
    with pytest.raises(span_rows.CsvFormatError, match=rf"line {line}: bytes that are not UTF-8 at byte offset {offset} "):
        _range_reader(path, types, range_bytes=500)


def test_a_row_with_too_few_cells_is_named_with_its_line(tmp_path, types):
    path = tmp_path / "data.csv"
    good = write_csv(tmp_path / "good.csv", [trip() for _ in range(20)]).read_text()
    path.write_text(good + "1,2,3\n")
    with pytest.raises(span_rows.CsvFormatError, match=r"line 22: 3 cells where the header has 18"):
        _range_reader(path, types, range_bytes=400)


def test_a_quoted_newline_is_read_row_by_row_from_the_first_quote_on(tmp_path, types):
    rows = [trip() for _ in range(20)] + [trip(company="Two\nLines Cab")] + [trip() for _ in range(20)]
    path = write_csv(tmp_path / "data.csv", rows)
    ranges, examples = _range_reader(path, types, range_bytes=500)
    assert ranges[-1].row_by_row and not any(file_range.row_by_row for file_range in ranges[:-1])
    assert examples == _row_reader(path, types) and len(examples) == 41
    rows[-1] = trip(fare="oops")
    path = write_csv(tmp_path / "bad.csv", rows)
    with pytest.raises(span_rows.CsvFormatError, match=r"line 43, column 'fare': value 'oops'"):
        _range_reader(path, types, range_bytes=500)


@pytest.mark.parametrize("ending", [b"\r\n", b"\n"])
def test_windows_line_endings_blank_lines_and_no_final_newline(tmp_path, types, ending):
    header = ",".join(read_csv_header()).encode()
    body = write_csv(tmp_path / "rows.csv", [trip(fare=float(i)) for i in range(10)]).read_bytes().split(b"\n")[1:-1]
    path = tmp_path / "data.csv"
    path.write_bytes(ending.join([header, *body[:5], b"", *body[5:]]))
    assert _range_reader(path, types, range_bytes=300)[1] == _row_reader(path, types)
    assert len(_row_reader(path, types)) == 10


def test_a_bare_carriage_return_is_left_to_the_row_reader(tmp_path, types):
    # pyarrow would end a row there; the csv module reads it its own way, which stays the rule.
    path = write_csv(tmp_path / "data.csv", [trip(), trip()])
    path.write_bytes(path.read_bytes().replace(b"Credit Card", b"Credit\rCard", 1))
    file_range, = span_chunks.plan_ranges(str(path))
    assert span_chunks.decode_in_bulk(path.read_bytes()[file_range.start:], file_range.header, types) is None
    assert _range_reader(path, types)[1] == _row_reader(path, types)


def test_a_file_with_its_columns_in_another_order_and_one_missing(tmp_path, types):
    header = read_csv_header()
    order = list(reversed([name for name in header if name != "company"]))
    shipped = write_csv(tmp_path / "rows.csv", [trip(company=None, fare=float(i)) for i in range(5)])
    reordered = tmp_path / "data.csv"
    with open(shipped) as source:
        rows = list(csv.DictReader(source))
    with open(reordered, "w", newline="") as target:
        writer = csv.DictWriter(target, fieldnames=order, lineterminator="\n", extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    assert _range_reader(reordered, types)[1] == _row_reader(shipped, types)


def test_a_header_only_file_has_no_range_and_no_example(tmp_path, types):
    path = write_csv(tmp_path / "data.csv", [])
    assert _range_reader(path, types) == ([], [])


def test_each_range_read_row_by_row_is_reported_with_its_reason(tmp_path, types):
    rows = [trip() for _ in range(40)]
    rows[5] = trip(trip_seconds=" 780")  # the row reader accepts it; the bulk decoder cannot decide it
    rows[35] = trip(company='Quoted "Cab"')  # from the first quote on, the row reader
    path = write_csv(tmp_path / "data.csv", rows)
    ranges = span_chunks.plan_ranges(str(path), 1000)
    reasons = []
    examples = [example for file_range in ranges for example in span_chunks.read_range(file_range, types, reasons.append)]
    assert examples == _row_reader(path, types)
    assert reasons[0] == span_chunks.ROW_BY_ROW_FALLBACK and reasons[-1] == span_chunks.ROW_BY_ROW_PLANNED
    assert len(reasons) == 2 and len(ranges) > 3


def _decoded_columns(path, types, columns, range_bytes):
    """The columns as tfx_bsl's decoder gives them from the examples `read_range` yields."""
    from tfx_bsl.coders import example_coder

    decoder = example_coder.ExamplesToRecordBatchDecoder()
    values = {name: [] for name in columns}
    for file_range in span_chunks.plan_ranges(str(path), range_bytes):
        decoded = decoder.DecodeBatch(list(span_chunks.read_range(file_range, types)))
        for name in columns:
            index = decoded.schema.get_field_index(name)
            values[name] += decoded.column(index).to_pylist() if index >= 0 else [None] * decoded.num_rows
    return values


def _read_columns(path, types, columns, range_bytes):
    values = {name: [] for name in columns}
    value_types = {}
    for file_range in span_chunks.plan_ranges(str(path), range_bytes):
        batch = span_chunks.read_range_columns(file_range, columns, types)
        assert batch.schema.names == list(columns)
        for name in columns:
            values[name] += batch.column(name).to_pylist()
            value_types.setdefault(name, set()).add(batch.column(name).type)
    return values, value_types


@pytest.mark.parametrize(
    "overrides",
    [
        {"trip_start_timestamp": None, "fare": None, "company": None},
        {"trip_start_timestamp": "1400269500.0"},  # a whole float in an INT column: the row reader's
        {"trip_start_timestamp": " 1400269500"},
        {"fare": "3.4028234e38"},
        {"company": 'Quoted "Cab"'},  # from the quote on, the range is read row by row
    ],
)
def test_columns_of_a_range_are_what_the_decoder_gives_from_its_examples(tmp_path, types, overrides):
    rows = [trip(fare=float(i), trip_start_timestamp=1400269500 + i) for i in range(30)]
    rows[12] = trip(**overrides)
    path = write_csv(tmp_path / "data.csv", rows)
    columns = ["trip_start_timestamp", "fare", "company", "not_in_the_file"]
    read, value_types = _read_columns(path, types, columns, 800)
    assert read == _decoded_columns(path, types, columns, 800)
    assert value_types == {
        "trip_start_timestamp": {pa.large_list(pa.int64())},
        "fare": {pa.large_list(pa.float32())},
        "company": {pa.large_list(pa.large_binary())},
        "not_in_the_file": {pa.large_list(pa.large_binary())},
    }


def test_columns_of_a_bad_cell_are_refused_with_its_line_where_the_bulk_path_gives_up(tmp_path, types):
    rows = [trip() for _ in range(10)]
    rows[4] = trip(trip_start_timestamp="soon")
    path = write_csv(tmp_path / "data.csv", rows)
    (file_range,) = span_chunks.plan_ranges(str(path))
    with pytest.raises(span_rows.CsvFormatError, match=r"line 6, column 'trip_start_timestamp': value 'soon'"):
        span_chunks.read_range_columns(file_range, ["trip_start_timestamp"], types)


def test_the_join_column_of_the_shipped_spans_is_read_in_bulk(types):
    # The bulk path decides every range of the shipped data; read_range would only be slower.
    for span in (1, 2, 3, 4):
        for file_range in span_chunks.plan_ranges(str(DATA_ROOT / f"span-{span}" / "data.csv"), 64 * 1024):
            with open(file_range.path, "rb") as data_file:
                data_file.seek(file_range.start)
                data = data_file.read(file_range.end - file_range.start)
            assert span_chunks._columns_in_bulk(data, file_range.header, ["trip_start_timestamp", "fare"], types) is not None
