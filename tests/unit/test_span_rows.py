"""The span CSV reader: types from the schema, an empty cell absent, bad cells named."""
import pytest
import tensorflow_data_validation as tfdv
from tensorflow_metadata.proto.v0 import schema_pb2

from pipeline.validation import span_rows
from tests.conftest import SCHEMA_PATH, read_csv_header, trip, write_csv


@pytest.fixture(scope="module")
def types():
    return span_rows.column_types(tfdv.load_schema_text(str(SCHEMA_PATH)))


def _rows(path, types):
    return list(span_rows.read_rows(str(path), span_rows.read_header(str(path)), types))


def test_an_empty_cell_is_an_absent_feature_not_an_empty_list(tmp_path, types):
    path = write_csv(tmp_path / "data.csv", [trip(company=None, dropoff_latitude=None)])
    (_, row), = _rows(path, types)
    assert row["company"] is None and row["dropoff_latitude"] is None
    example = span_rows.to_example(row, types)
    assert "company" not in example.features.feature
    assert "dropoff_latitude" not in example.features.feature
    assert example.features.feature["payment_type"].bytes_list.value == [b"Credit Card"]


def test_types_come_from_the_schema_not_from_the_values(tmp_path, types):
    # Whole-number fares stay FLOAT; an INT column written as "780.0" stays INT.
    path = write_csv(tmp_path / "data.csv", [trip(fare=7, trip_seconds="780.0"), trip(fare=12)])
    rows = [row for _, row in _rows(path, types)]
    assert [row["fare"] for row in rows] == [7.0, 12.0] and all(isinstance(row["fare"], float) for row in rows)
    assert rows[0]["trip_seconds"] == 780 and isinstance(rows[0]["trip_seconds"], int)
    example = span_rows.to_example(rows[0], types)
    assert example.features.feature["fare"].float_list.value == [7.0]
    assert example.features.feature["trip_seconds"].int64_list.value == [780]
    assert types["fare"] == schema_pb2.FLOAT and types["trip_seconds"] == schema_pb2.INT


@pytest.mark.parametrize(
    "overrides, column, value",
    [
        ({"fare": "12,50"}, "fare", "12,50"),
        ({"trip_seconds": "780.5"}, "trip_seconds", "780.5"),
        ({"fare": "NaN"}, "fare", "NaN"),
        ({"trip_miles": "inf"}, "trip_miles", "inf"),
        ({"trip_start_hour": "seven"}, "trip_start_hour", "seven"),
        ({"dropoff_census_tract": "99999999999999999999"}, "dropoff_census_tract", "99999999999999999999"),
        ({"fare": "1e39"}, "fare", "1e39"),
        ({"trip_seconds": "1_000"}, "trip_seconds", "1_000"),
    ],
)
def test_a_cell_that_is_not_its_schema_type_names_file_line_column_and_value(tmp_path, types, overrides, column, value):
    path = write_csv(tmp_path / "data.csv", [trip(), trip(**overrides)])
    with pytest.raises(span_rows.CsvFormatError) as raised:
        _rows(path, types)
    message = str(raised.value)
    assert f"{path}, line 3, column {column!r}: value {value!r}" in message


def test_a_quoted_cell_may_span_lines_and_line_numbers_stay_the_file_s(tmp_path, types):
    path = write_csv(tmp_path / "data.csv", [trip(company="Two\nLines Cab"), trip(fare="oops")])
    with pytest.raises(span_rows.CsvFormatError, match=r"line 4, column 'fare'"):
        _rows(path, types)
    path = write_csv(tmp_path / "ok.csv", [trip(company="Two\nLines Cab"), trip()])
    rows = _rows(path, types)
    assert [line for line, _ in rows] == [2, 4]
    assert rows[0][1]["company"] == b"Two\nLines Cab"


def test_a_row_with_the_wrong_number_of_cells_is_named(tmp_path, types):
    path = tmp_path / "data.csv"
    path.write_text(",".join(read_csv_header()) + "\n1,2,3\n")
    with pytest.raises(span_rows.CsvFormatError, match=r"line 2: 3 cells where the header has 18"):
        _rows(path, types)


def test_a_header_that_repeats_a_column_is_refused(tmp_path):
    path = tmp_path / "data.csv"
    path.write_text("fare,tips,fare\n1,2,3\n")
    with pytest.raises(span_rows.CsvFormatError, match=r"line 1: the header names column\(s\) \['fare'\] more than once"):
        span_rows.read_header(str(path))


def test_record_batches_hold_null_where_the_cell_was_empty(tmp_path, types):
    path = write_csv(tmp_path / "data.csv", [trip(company=None), trip()])
    header = span_rows.read_header(str(path))
    batch = span_rows.to_record_batch([row for _, row in _rows(path, types)], header, types)
    company = batch.column(header.index("company"))
    assert company.to_pylist() == [None, [b"Taxi Affiliation Services"]]
    assert str(batch.column(header.index("fare")).type) == "list<item: float>"


def test_bytes_that_are_not_utf8_are_named_with_file_line_and_byte_offset(tmp_path):
    path = tmp_path / "data.csv"
    path.write_bytes(b"fare,company\n7.5,Taxi\n8.0,Caf\xe9 Cab\n")
    with pytest.raises(span_rows.CsvFormatError, match=r"data.csv, line 3: bytes that are not UTF-8 at byte offset 29"):
        list(span_rows.read_rows(str(path), ["fare", "company"], {"fare": schema_pb2.FLOAT, "company": schema_pb2.BYTES}))


def test_a_byte_order_mark_is_not_part_of_the_first_column_name(tmp_path):
    path = tmp_path / "data.csv"
    path.write_bytes(b"\xef\xbb\xbffare,company\n7.5,Taxi\n")
    assert span_rows.read_header(str(path)) == ["fare", "company"]


def test_a_folder_named_like_a_csv_file_is_named_as_a_folder(tmp_path):
    (tmp_path / "data.csv").mkdir()
    with pytest.raises(span_rows.CsvFormatError, match="is a folder, not a CSV file"):
        span_rows.read_header(str(tmp_path / "data.csv"))


def test_files_may_order_columns_differently_and_a_column_a_file_lacks_is_missing_there(tmp_path, types):
    from pipeline.validation.span_rows import common_header

    first = tmp_path / "a.csv"
    first.write_text("fare,company,tips\n1,x,0\n")
    reordered = tmp_path / "b.csv"
    reordered.write_text("tips,fare,company\n0,1,x\n")
    renamed = tmp_path / "c.csv"
    renamed.write_text("fare,firm,tips\n1,y,0\n")
    assert common_header([str(first), str(reordered)]) == ["fare", "company", "tips"]
    header = common_header([str(first), str(renamed)])
    assert header == ["fare", "company", "tips", "firm"]
    rows = [row for _, row in span_rows.read_rows(str(renamed), span_rows.read_header(str(renamed)), types)]
    batch = span_rows.to_record_batch(rows, header, types)
    # The renamed span has no company (the checks report it as missing) and a column the schema lacks.
    assert batch.column(header.index("company")).to_pylist() == [None]
    assert batch.column(header.index("firm")).to_pylist() == [[b"y"]]


def test_typed_row_puts_json_typed_values_in_their_schema_type():
    from tensorflow_metadata.proto.v0 import schema_pb2

    types = {"fare": schema_pb2.FLOAT, "trip_seconds": schema_pb2.INT, "company": schema_pb2.BYTES}
    row = span_rows.typed_row({"fare": 7, "trip_seconds": 780.0, "company": "Flash Cab", "extra": 1, "tips": None}, types)
    assert row == {"fare": 7.0, "trip_seconds": 780, "company": b"Flash Cab", "extra": 1, "tips": None}
    assert isinstance(row["fare"], float) and isinstance(row["trip_seconds"], int)
    with pytest.raises(ValueError, match="column 'trip_seconds': value 780.5 is not a INT"):
        span_rows.typed_row({"trip_seconds": 780.5}, types)
    with pytest.raises(ValueError, match="column 'fare': value 'seven' is not a FLOAT"):
        span_rows.typed_row({"fare": "seven"}, types)
