"""ExampleGen for a window of CSV spans: one Examples artifact made from several span folders.

TFX's CsvExampleGen ingests one span per run (the newest its pattern matches). Training on
"every span so far" or "the newest K spans" needs the window in one artifact, so this
executor keeps CsvExampleGen's component, driver and split logic and only replaces how files
are read: it reads every `span-<N>/*.csv` with N inside the window of its custom_config,
each file by its own header's column names, with types from the curated schema (an empty
cell an absent feature, a bad cell an error naming file, line, column and value), and
records on the output artifact which spans and files went in.

Files are read in byte ranges (`pipeline.validation.span_chunks`): the ranges are spread
over Beam's workers, each decoded in bulk by pyarrow's CSV reader into the serialized
tf.Examples that `pipeline.validation.span_rows` makes row by row, byte for byte, so the
hash split puts every trip where the row reader put it. A range the bulk path cannot
decide exactly is read by the row reader, which also names the bad cell.
"""
import json
from typing import Any, Dict, Iterable, List, Tuple

import apache_beam as beam
import tensorflow_data_validation as tfdv
from google.protobuf import struct_pb2
from tfx.components.example_gen.base_example_gen_executor import BaseExampleGenExecutor
from tfx.proto import example_gen_pb2
from tfx.types import artifact_utils, standard_component_specs
from tfx.utils import proto_utils

from pipeline.components.artifacts import SPAN_FILES_PROPERTY, SPANS_PROPERTY
from pipeline.spans import file_sha256
from pipeline.validation import span_chunks, span_rows
from pipeline.validation.span_rows import common_header, window_files

# Keys of the Struct packed in the component's custom_config (see span_window_config).
FIRST_SPAN_KEY = "first_span"
LAST_SPAN_KEY = "last_span"
SCHEMA_PATH_KEY = "schema_path"
CODE_FINGERPRINT_KEY = "code_fingerprint"


def span_window_config(
    first_span: int, last_span: int, schema_path: str, code_fingerprint: str = ""
) -> example_gen_pb2.CustomConfig:
    """Returns the ExampleGen custom_config that reads spans first_span..last_span.

    Args:
        first_span: The window's first span.
        last_span: The window's last span (ExampleGen's own range_config admits only one span,
            so the window travels here).
        schema_path: The curated schema whose column types the rows are parsed with (read when
            the step runs, as `pipeline.components.curated_schema.ImportCuratedSchema` reads it).
        code_fingerprint: `pipeline.runners.code_fingerprint.project_fingerprint()`, so a change of the
            reader's code is never answered from TFX's cache.
    """
    settings = struct_pb2.Struct()
    settings.update(
        {
            FIRST_SPAN_KEY: first_span,
            LAST_SPAN_KEY: last_span,
            SCHEMA_PATH_KEY: schema_path,
            CODE_FINGERPRINT_KEY: code_fingerprint,
        }
    )
    custom_config = example_gen_pb2.CustomConfig()
    custom_config.custom_config.Pack(settings)
    return custom_config


def _settings(exec_properties: Dict[str, Any]) -> Tuple[int, int, str]:
    """Returns (first span, last span, schema path) from the component's custom_config."""
    entry = exec_properties.get(standard_component_specs.CUSTOM_CONFIG_KEY)
    custom_config = example_gen_pb2.CustomConfig()
    settings = struct_pb2.Struct()
    if entry:
        proto_utils.json_to_proto(entry, custom_config)
    if not entry or not custom_config.custom_config.Unpack(settings) or SCHEMA_PATH_KEY not in settings:
        raise ValueError("the span-window ExampleGen needs custom_config=span_window_config(first, last, schema_path)")
    return int(settings[FIRST_SPAN_KEY]), int(settings[LAST_SPAN_KEY]), settings[SCHEMA_PATH_KEY]


class _ReadRanges(beam.DoFn):
    """Reads ranges of CSV files into serialized tf.Examples typed by the schema; Beam counters
    count the ranges read by the (slower) row reader, planned or fallen back."""

    def __init__(self, types: span_rows.ColumnTypes):
        self._types = types
        self._row_by_row = {
            reason: beam.metrics.Metrics.counter("span_window_example_gen", reason)
            for reason in (span_chunks.ROW_BY_ROW_PLANNED, span_chunks.ROW_BY_ROW_FALLBACK)
        }

    def process(self, file_range: span_chunks.FileRange) -> Iterable[bytes]:
        yield from span_chunks.read_range(file_range, self._types, lambda reason: self._row_by_row[reason].inc())


@beam.ptransform_fn
@beam.typehints.with_input_types(beam.Pipeline)
@beam.typehints.with_output_types(bytes)
def _SpanWindowToExample(
    pipeline: beam.Pipeline, exec_properties: Dict[str, Any], split_pattern: str
) -> beam.pvalue.PCollection:
    """Reads the CSV files of the span window into serialized tf.Examples."""
    first_span, last_span, schema_path = _settings(exec_properties)
    input_base = exec_properties[standard_component_specs.INPUT_BASE_KEY]
    files = [path for paths in window_files(input_base, split_pattern, first_span, last_span).values() for path in paths]
    common_header(files)
    types = span_rows.column_types(tfdv.load_schema_text(schema_path))
    return (
        pipeline
        | "ListFiles" >> beam.Create(files)
        | "PlanRanges" >> beam.FlatMap(span_chunks.plan_ranges)
        # Ranges, not files, are what the runner spreads over its workers.
        | "SpreadRanges" >> beam.Reshuffle()
        | "ReadRanges" >> beam.ParDo(_ReadRanges(types))
    )


class Executor(BaseExampleGenExecutor):
    """CsvExampleGen's executor for a window of spans (see the module docstring)."""

    def GetInputSourceToExamplePTransform(self) -> beam.PTransform:
        """Returns the PTransform that reads the span window."""
        return _SpanWindowToExample

    def Do(self, input_dict: Dict[str, List[Any]], output_dict: Dict[str, List[Any]], exec_properties: Dict[str, Any]) -> None:
        """Writes the examples, then records the spans and file fingerprints on the artifact."""
        super().Do(input_dict, output_dict, exec_properties)
        first_span, last_span, _ = _settings(exec_properties)
        input_base = exec_properties[standard_component_specs.INPUT_BASE_KEY]
        pattern = json.loads(exec_properties[standard_component_specs.INPUT_CONFIG_KEY])["splits"][0]["pattern"]
        files = window_files(input_base, pattern, first_span, last_span)
        examples = artifact_utils.get_single_instance(output_dict[standard_component_specs.EXAMPLES_KEY])
        examples.span = last_span
        examples.set_string_custom_property(SPANS_PROPERTY, ",".join(str(span) for span in sorted(files)))
        examples.set_string_custom_property(
            SPAN_FILES_PROPERTY,
            json.dumps({path: file_sha256(path) for paths in files.values() for path in paths}, sort_keys=True),
        )


