"""ExampleGen for a window of CSV spans: one Examples artifact made from several span folders.

TFX's CsvExampleGen ingests one span per run (the newest its pattern matches). Training on
"every span so far" or "the newest K spans" needs the window in one artifact, so this
executor keeps CsvExampleGen's component, driver and split logic and only replaces how files
are read: it reads every `span-<N>/*.csv` with N inside the component's `range_config`
static range, checks that all files share one header and that every row has that many
cells, and records on the output artifact which spans and files went in.
"""
import csv
import hashlib
import io
import json
import os
from typing import Any, Dict, Iterable, List, Tuple

import apache_beam as beam
import tensorflow as tf
from tfx.components.example_gen.base_example_gen_executor import BaseExampleGenExecutor
from tfx.proto import example_gen_pb2, range_config_pb2
from tfx.types import artifact_utils, standard_component_specs
from tfx.utils import proto_utils
from tfx_bsl.coders import csv_decoder

from pipeline.spans import span_of_folder

# Custom properties set on the Examples artifact, read by lineage and reports.
SPANS_PROPERTY = "spans"
SPAN_FILES_PROPERTY = "span_files"


class CsvFormatError(ValueError):
    """A CSV file of a span is malformed."""


def span_window_config(first_span: int, last_span: int) -> example_gen_pb2.CustomConfig:
    """Returns the ExampleGen custom_config that selects spans first_span..last_span.

    The window travels as a RangeConfig static range packed in the CustomConfig (ExampleGen's
    own range_config only admits a single span).
    """
    custom_config = example_gen_pb2.CustomConfig()
    custom_config.custom_config.Pack(
        range_config_pb2.RangeConfig(
            static_range=range_config_pb2.StaticRange(start_span_number=first_span, end_span_number=last_span)
        )
    )
    return custom_config


def _selected_spans(exec_properties: Dict[str, Any]) -> Tuple[int, int]:
    entry = exec_properties.get(standard_component_specs.CUSTOM_CONFIG_KEY)
    custom_config = example_gen_pb2.CustomConfig()
    range_config = range_config_pb2.RangeConfig()
    if entry:
        proto_utils.json_to_proto(entry, custom_config)
    if not entry or not custom_config.custom_config.Unpack(range_config) or not range_config.HasField("static_range"):
        raise ValueError("the span-window ExampleGen needs custom_config=span_window_config(first, last)")
    return range_config.static_range.start_span_number, range_config.static_range.end_span_number


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


def _file_fingerprint(path: str) -> str:
    digest = hashlib.sha256()
    with tf.io.gfile.GFile(path, "rb") as data_file:
        for chunk in iter(lambda: data_file.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _header(path: str) -> List[str]:
    with tf.io.gfile.GFile(path, "r") as data_file:
        first_line = data_file.readline()
    if not first_line.strip():
        raise CsvFormatError(f"{path}: the file is empty; a span CSV starts with a header row")
    return next(csv.reader([first_line]))


class _ReadRows(beam.DoFn):
    """Reads one CSV file into lists of cells, checking each row's cell count."""

    def __init__(self, column_names: List[str]):
        self._column_names = column_names

    def process(self, path: str) -> Iterable[List[bytes]]:
        with tf.io.gfile.GFile(path, "r") as data_file:
            reader = csv.reader(io.StringIO(data_file.read()))
            next(reader)  # the header, already checked
            for row in reader:
                if not row:
                    continue
                if len(row) != len(self._column_names):
                    raise CsvFormatError(
                        f"{path}, line {reader.line_num}: {len(row)} cells where the header has "
                        f"{len(self._column_names)} ({', '.join(self._column_names)})"
                    )
                yield [cell.encode("utf-8") for cell in row]


class _RowToExample(beam.DoFn):
    """Turns a row of cells into a tf.Example; an empty cell becomes a feature with no value."""

    def process(self, row: List[bytes], column_infos: List[csv_decoder.ColumnInfo]) -> Iterable[tf.train.Example]:
        feature = {}
        for cell, info in zip(row, column_infos):
            if info.type == csv_decoder.ColumnType.INT:
                value = tf.train.Feature(int64_list=tf.train.Int64List(value=[int(cell)] if cell else []))
            elif info.type == csv_decoder.ColumnType.FLOAT:
                value = tf.train.Feature(float_list=tf.train.FloatList(value=[float(cell)] if cell else []))
            elif info.type == csv_decoder.ColumnType.STRING:
                value = tf.train.Feature(bytes_list=tf.train.BytesList(value=[cell] if cell else []))
            else:  # a column that is empty in every row
                value = tf.train.Feature()
            feature[info.name] = value
        yield tf.train.Example(features=tf.train.Features(feature=feature))


@beam.ptransform_fn
@beam.typehints.with_input_types(beam.Pipeline)
@beam.typehints.with_output_types(tf.train.Example)
def _SpanWindowToExample(
    pipeline: beam.Pipeline, exec_properties: Dict[str, Any], split_pattern: str
) -> beam.pvalue.PCollection:
    """Reads the CSV files of the span window into tf.Examples."""
    first_span, last_span = _selected_spans(exec_properties)
    input_base = exec_properties[standard_component_specs.INPUT_BASE_KEY]
    files = [path for paths in window_files(input_base, split_pattern, first_span, last_span).values() for path in paths]
    column_names = _header(files[0])
    for path in files[1:]:
        if _header(path) != column_names:
            raise CsvFormatError(f"{path}: header {_header(path)} differs from {files[0]}'s header {column_names}")
    rows = pipeline | "ListFiles" >> beam.Create(files) | "ReadRows" >> beam.ParDo(_ReadRows(column_names))
    column_infos = beam.pvalue.AsSingleton(
        rows | "InferColumnTypes" >> beam.CombineGlobally(csv_decoder.ColumnTypeInferrer(column_names, skip_blank_lines=True))
    )
    return rows | "ToExample" >> beam.ParDo(_RowToExample(), column_infos)


class Executor(BaseExampleGenExecutor):
    """CsvExampleGen's executor for a window of spans (see the module docstring)."""

    def GetInputSourceToExamplePTransform(self) -> beam.PTransform:
        """Returns the PTransform that reads the span window."""
        return _SpanWindowToExample

    def Do(self, input_dict: Dict[str, List[Any]], output_dict: Dict[str, List[Any]], exec_properties: Dict[str, Any]) -> None:
        """Writes the examples, then records the spans and file fingerprints on the artifact."""
        super().Do(input_dict, output_dict, exec_properties)
        first_span, last_span = _selected_spans(exec_properties)
        input_base = exec_properties[standard_component_specs.INPUT_BASE_KEY]
        pattern = json.loads(exec_properties[standard_component_specs.INPUT_CONFIG_KEY])["splits"][0]["pattern"]
        files = window_files(input_base, pattern, first_span, last_span)
        examples = artifact_utils.get_single_instance(output_dict[standard_component_specs.EXAMPLES_KEY])
        examples.span = last_span
        examples.set_string_custom_property(SPANS_PROPERTY, ",".join(str(span) for span in sorted(files)))
        examples.set_string_custom_property(
            SPAN_FILES_PROPERTY,
            json.dumps({path: _file_fingerprint(path) for paths in files.values() for path in paths}, sort_keys=True),
        )


def files_by_span(examples: Any) -> Dict[int, List[str]]:
    """The CSV files an Examples artifact was made from, by span, spans ascending.

    Args:
        examples: An Examples artifact of this ExampleGen (it records SPAN_FILES_PROPERTY).

    Returns:
        Span number -> file paths, in the recorded order.
    """
    by_span: Dict[int, List[str]] = {}
    for path in json.loads(examples.get_string_custom_property(SPAN_FILES_PROPERTY) or "{}"):
        by_span.setdefault(span_of_folder(os.path.basename(os.path.dirname(path))), []).append(path)
    return dict(sorted(by_span.items()))
