"""Span CSV files as Arrow RecordBatches in a Beam pipeline, for the data checks' statistics.

Files are read in ExampleGen's ranges (`pipeline.validation.span_chunks`), spread over the
runner's workers, and decoded into the tf.Examples ExampleGen writes, then into RecordBatches
by tfx_bsl's decoder: the checks see the examples the model trains on, and no worker holds a
whole file.
"""
from typing import Callable, Dict, Iterable, List, Sequence, Tuple

import apache_beam as beam
import pyarrow as pa
from tensorflow_metadata.proto.v0 import schema_pb2
from tfx_bsl.coders import example_coder

from pipeline.validation import span_chunks, span_rows

# Rows per Arrow RecordBatch.
BATCH_ROWS = 1000


class _ReadRecordBatches(beam.DoFn):
    """Reads one range of a span CSV file into RecordBatches typed by the schema, each trip
    first put in its part by `part_of` (its serialized tf.Example -> a part's name); yields
    (part, RecordBatch of up to `BATCH_ROWS` of that part's trips)."""

    def __init__(self, header: List[str], types: span_rows.ColumnTypes, part_of: Callable[[bytes], str]):
        self._header = header
        self._types = types
        self._part_of = part_of
        self._decoder = None

    def setup(self) -> None:
        self._decoder = example_coder.ExamplesToRecordBatchDecoder()

    def process(self, file_range: span_chunks.FileRange) -> Iterable[Tuple[str, pa.RecordBatch]]:
        parts: Dict[str, List[bytes]] = {}
        for serialized in span_chunks.read_range(file_range, self._types):
            part = self._part_of(serialized)
            examples = parts.setdefault(part, [])
            examples.append(serialized)
            if len(examples) == BATCH_ROWS:
                yield part, self._record_batch(examples)
                parts[part] = []
        for part, examples in parts.items():
            if examples:
                yield part, self._record_batch(examples)

    def _record_batch(self, examples: List[bytes]) -> pa.RecordBatch:
        """Decodes examples; a column no example of the batch holds is added as all missing, so
        a file that lacks a column counts each of its rows as missing that column."""
        decoded = self._decoder.DecodeBatch(examples)
        arrays, names = list(decoded.columns), list(decoded.schema.names)
        for name in self._header:
            if name not in names:
                kind = self._types.get(name, schema_pb2.BYTES)
                arrays.append(pa.nulls(decoded.num_rows, type=pa.large_list(span_chunks.DECODED_TYPES[kind])))
                names.append(name)
        return pa.RecordBatch.from_arrays(arrays, names)


class ReadSpanFiles(beam.PTransform):
    """CSV files -> (part, RecordBatch) of their rows, typed by the schema, each trip in the
    part `part_of(its serialized tf.Example)` names.

    Every batch has a column for each name of `header` (the union of the files' headers):
    all missing where a file lacks it.

    Raises (when the pipeline runs):
        pipeline.validation.span_rows.CsvFormatError: when a file is malformed.
    """

    def __init__(self, paths: Sequence[str], header: List[str], types: span_rows.ColumnTypes, part_of: Callable[[bytes], str]):
        super().__init__()
        self._paths = list(paths)
        self._header = header
        self._types = types
        self._part_of = part_of

    def expand(self, begin: beam.pvalue.PBegin) -> beam.PCollection:
        return (
            begin
            | "Files" >> beam.Create(self._paths)
            | "PlanRanges" >> beam.FlatMap(span_chunks.plan_ranges)
            | "SpreadRanges" >> beam.Reshuffle()
            | "Read" >> beam.ParDo(_ReadRecordBatches(self._header, self._types, self._part_of))
        )


class ReadSpanColumns(beam.PTransform):
    """{span: CSV files} -> (span, RecordBatch) per range holding only `columns`, typed by the
    schema as `ReadSpanFiles` gives them (`span_chunks.read_range_columns`): for a check that
    needs a few columns of every trip of several spans."""

    def __init__(self, span_files: Dict[int, Sequence[str]], columns: Sequence[str], types: span_rows.ColumnTypes):
        super().__init__()
        self._span_files = [(span, path) for span, paths in span_files.items() for path in paths]
        self._columns = list(columns)
        self._types = types

    def expand(self, begin: beam.pvalue.PBegin) -> beam.PCollection:
        columns, types = self._columns, self._types
        return (
            begin
            | "Files" >> beam.Create(self._span_files)
            | "PlanRanges" >> beam.FlatMapTuple(lambda span, path: [(span, file_range) for file_range in span_chunks.plan_ranges(path)])
            | "SpreadRanges" >> beam.Reshuffle()
            | "Read" >> beam.MapTuple(lambda span, file_range: (span, span_chunks.read_range_columns(file_range, columns, types))).with_output_types(Tuple[int, pa.RecordBatch])
        )
