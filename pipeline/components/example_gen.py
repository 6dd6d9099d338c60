"""ExampleGen for a window of CSV spans: one Examples artifact made from several span folders.

TFX's CsvExampleGen ingests one span per run (the newest its pattern matches). Training on
"every span so far" or "the newest K spans" needs the window in one artifact, so this
executor keeps CsvExampleGen's component, driver and split rule and replaces how files are
read and written: it reads every `span-<N>/*.csv` with N inside the window of its
custom_config, each file by its own header's column names, with types from the curated
schema (an empty cell an absent feature, a bad cell an error naming file, line, column and
value), and records on the output artifact which spans and files went in.

Files are read in byte ranges (`pipeline.validation.span_chunks`), each decoded in bulk by
pyarrow's CSV reader into the serialized tf.Examples that `pipeline.validation.span_rows`
makes row by row, byte for byte. A range the bulk path cannot decide exactly is read by the
row reader, which also names the bad cell.

The split and the write are per range, not per example: the Beam pipeline is
files -> ranges -> Reshuffle (of the few ranges) -> one DoFn that reads a range, puts each
example in its split with TFX's own partition function (the hash and buckets
BaseExampleGenExecutor uses, so every trip lands where CsvExampleGen would put it) and writes
each split's examples of the range, in a seeded random order, to one gzipped TFRecord file
`Split-<split>/data_tfrecord-<file>-<offset>.gz`. TFX's base executor instead partitions,
reshuffles (a GroupByKey of every example, held in memory by the DirectRunner) and writes
example by example; here a worker holds one range at a time.

Each span is written once: its files go to an entry of the kept span examples
(`<pipeline_root>/SpanExamples/<key>/Split-<split>/`, `SpanExamplesStore`), under a key of the
span files' SHA-256, the split, the schema, the range size, the code and the libraries, and a
later window links them into its artifact (`Split-<split>/span-<N>-<input split>-<file>`)
instead of reading the span again. Only the spans without a complete entry are read.
"""
import dataclasses
import functools
import hashlib
import itertools
import json
import logging
import os
import uuid
from typing import Any, Dict, Iterable, Iterator, List, Optional, Sequence, Tuple

import apache_beam as beam
import numpy as np
import tensorflow as tf
import tensorflow_data_validation as tfdv
from google.protobuf import struct_pb2
from tfx.components.example_gen import utils as example_gen_utils
from tfx.components.example_gen import write_split
from tfx.components.example_gen.base_example_gen_executor import BaseExampleGenExecutor
# TFX's own partition function (private, but the one BaseExampleGenExecutor's Partition
# calls): using it rather than a copy means a change of TFX's hash cannot silently move
# trips between train and eval here while CsvExampleGen moves them elsewhere.
from tfx.components.example_gen.base_example_gen_executor import _PartitionFn as tfx_partition_fn
from tfx.components.util import examples_utils
from tfx.proto import example_gen_pb2
from tfx.types import artifact_utils, standard_component_specs
from tfx.utils import proto_utils

from pipeline.components.artifacts import SPAN_EXAMPLES_DIR_PROPERTY, SPAN_EXAMPLES_PROPERTY, SPAN_FILES_PROPERTY, SPANS_PROPERTY
from pipeline.spans import file_sha256, kept_file_sha256
from pipeline.validation import code_scope, span_chunks, span_rows, span_statistics
from pipeline.validation.span_rows import common_header, window_files

logger = logging.getLogger(__name__)

# Keys of the Struct packed in the component's custom_config (see span_window_config).
FIRST_SPAN_KEY = "first_span"
LAST_SPAN_KEY = "last_span"
SCHEMA_PATH_KEY = "schema_path"
CODE_FINGERPRINT_KEY = "code_fingerprint"
RANGE_BYTES_KEY = "range_bytes"
SPAN_EXAMPLES_DIR_KEY = "span_examples_dir"
SOURCE_HASHES_DIR_KEY = "source_hashes_dir"

# Beam counters: rows written per split are `rows_<split>` in this namespace, beside the
# row reader's range counters (span_chunks.ROW_BY_ROW_PLANNED and ROW_BY_ROW_FALLBACK).
METRICS_NAMESPACE = "span_window_example_gen"
# Files are written here first, then renamed into their split's folder, so a reader's
# `Split-<name>/*` never sees a half-written file; the folder is removed when the step ends.
TEMP_FOLDER = ".span_window_example_gen_tmp"
# Version of what a kept span's entry holds (its folders and MANIFEST_FILE): a change of the
# layout changes every key, so an entry of another layout is never read.
KEPT_FORMAT = 1
# Written last in a kept span's entry: its files per split. An entry without it (a write that
# stopped) or with a file missing is written again.
MANIFEST_FILE = "MANIFEST.json"
# A range read by the row reader after a quote may be the rest of a large file: it is
# shuffled and written in blocks of this many examples, so a worker still holds a bounded part.
ROW_BY_ROW_BLOCK_EXAMPLES = 65_536


def span_window_config(
    first_span: int,
    last_span: int,
    schema_path: str,
    code_fingerprint: str = "",
    range_bytes: Optional[int] = None,
    span_examples_dir: str = "",
    source_hashes_dir: str = "",
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
        range_bytes: Bytes of CSV per range (the unit of work a worker reads, splits and writes
            as one file per split); `span_chunks.DEFAULT_RANGE_BYTES` when not given.
        span_examples_dir: Where each span's examples are kept from run to run
            (`<pipeline_root>/SpanExamples`): a span already there is linked into the window's
            artifact, not read again. Empty: every span is read each run.
        source_hashes_dir: Where each span file's SHA-256 is kept with its size and times
            (`<pipeline_root>/SourceHashes`, `pipeline.spans.kept_file_sha256`): a file is
            hashed again only when those changed. Empty: every file is hashed each run.

    Raises:
        ValueError: when range_bytes is not positive.
    """
    settings = struct_pb2.Struct()
    settings.update(
        {
            FIRST_SPAN_KEY: first_span,
            LAST_SPAN_KEY: last_span,
            SCHEMA_PATH_KEY: schema_path,
            CODE_FINGERPRINT_KEY: code_fingerprint,
            SPAN_EXAMPLES_DIR_KEY: span_examples_dir,
            SOURCE_HASHES_DIR_KEY: source_hashes_dir,
        }
    )
    if range_bytes is not None:
        if range_bytes < 1:
            raise ValueError(f"range_bytes must be a positive number of bytes, not {range_bytes}")
        settings.update({RANGE_BYTES_KEY: range_bytes})
    custom_config = example_gen_pb2.CustomConfig()
    custom_config.custom_config.Pack(settings)
    return custom_config


@dataclasses.dataclass(frozen=True)
class WindowSettings:
    """What the component's custom_config says: the span window, the schema, the range size."""

    first_span: int
    last_span: int
    schema_path: str
    range_bytes: int = span_chunks.DEFAULT_RANGE_BYTES
    span_examples_dir: str = ""
    source_hashes_dir: str = ""


def window_settings(exec_properties: Dict[str, Any]) -> WindowSettings:
    """Returns the settings packed in the component's custom_config by `span_window_config`.

    Raises:
        ValueError: when the custom_config is not a span_window_config.
    """
    entry = exec_properties.get(standard_component_specs.CUSTOM_CONFIG_KEY)
    custom_config = example_gen_pb2.CustomConfig()
    settings = struct_pb2.Struct()
    if entry:
        proto_utils.json_to_proto(entry, custom_config)
    if not entry or not custom_config.custom_config.Unpack(settings) or SCHEMA_PATH_KEY not in settings:
        raise ValueError("the span-window ExampleGen needs custom_config=span_window_config(first, last, schema_path)")
    return WindowSettings(
        first_span=int(settings[FIRST_SPAN_KEY]),
        last_span=int(settings[LAST_SPAN_KEY]),
        schema_path=settings[SCHEMA_PATH_KEY],
        range_bytes=int(settings[RANGE_BYTES_KEY]) if RANGE_BYTES_KEY in settings else span_chunks.DEFAULT_RANGE_BYTES,
        span_examples_dir=settings[SPAN_EXAMPLES_DIR_KEY] if SPAN_EXAMPLES_DIR_KEY in settings else "",
        source_hashes_dir=settings[SOURCE_HASHES_DIR_KEY] if SOURCE_HASHES_DIR_KEY in settings else "",
    )


class _RowByRowCounter:
    """`span_chunks.read_range`'s on_row_by_row: counts in Beam, by reason, the ranges the
    (slower) row reader read, planned or fallen back."""

    def __init__(self) -> None:
        self._counters = {
            reason: beam.metrics.Metrics.counter(METRICS_NAMESPACE, reason)
            for reason in (span_chunks.ROW_BY_ROW_PLANNED, span_chunks.ROW_BY_ROW_FALLBACK)
        }

    def __call__(self, reason: str) -> None:
        self._counters[reason].inc()


class _ReadRanges(beam.DoFn):
    """Reads ranges of CSV files into serialized tf.Examples typed by the schema; Beam counters
    count the ranges read by the (slower) row reader, planned or fallen back."""

    def __init__(self, types: span_rows.ColumnTypes):
        self._types = types
        self._row_by_row = _RowByRowCounter()

    def process(self, file_range: span_chunks.FileRange) -> Iterable[bytes]:
        yield from span_chunks.read_range(file_range, self._types, self._row_by_row)


@beam.ptransform_fn
@beam.typehints.with_input_types(beam.Pipeline)
@beam.typehints.with_output_types(bytes)
def _SpanWindowToExample(
    pipeline: beam.Pipeline, exec_properties: Dict[str, Any], split_pattern: str
) -> beam.pvalue.PCollection:
    """Reads the CSV files of the span window into serialized tf.Examples (TFX's base Do path)."""
    settings = window_settings(exec_properties)
    input_base = exec_properties[standard_component_specs.INPUT_BASE_KEY]
    files = [path for paths in window_files(input_base, split_pattern, settings.first_span, settings.last_span).values() for path in paths]
    common_header(files)
    types = span_rows.column_types(tfdv.load_schema_text(settings.schema_path))
    return (
        pipeline
        | "ListFiles" >> beam.Create(files)
        | "PlanRanges" >> beam.FlatMap(span_chunks.plan_ranges, settings.range_bytes)
        # Ranges, not files, are what the runner spreads over its workers.
        | "SpreadRanges" >> beam.Reshuffle()
        | "ReadRanges" >> beam.ParDo(_ReadRanges(types))
    )


@dataclasses.dataclass(frozen=True)
class SplitRule:
    """Which split each example goes to: TFX's hash buckets, or the input split it was read from."""

    names: Tuple[str, ...]
    # Cumulative hash buckets of the output splits, as BaseExampleGenExecutor computes them;
    # empty when the input splits are the output splits.
    buckets: Tuple[int, ...]
    split_config: example_gen_pb2.SplitConfig

    def split_of(self, record: bytes, input_split: int) -> int:
        """Returns the index of the split the serialized example goes to."""
        if not self.buckets:
            return input_split
        return tfx_partition_fn(record, len(self.buckets), list(self.buckets), self.split_config)


def range_file_name(file_index: int, file_range: span_chunks.FileRange) -> str:
    """Returns the name of a range's file in each split's folder: the same for every attempt at
    the range, so a retried bundle overwrites its file rather than adding a second one."""
    return f"{write_split.DEFAULT_TF_RECORD_FILE_NAME}-{file_index:05d}-{file_range.start:012d}.gz"


def range_seed(file_range: span_chunks.FileRange) -> int:
    """Returns the seed of a range's example order: from its span folder, file name and first
    byte, so a rerun writes the same order wherever the data root lives."""
    where = "/".join(file_range.path.rstrip("/").split("/")[-2:])
    return int.from_bytes(hashlib.sha256(f"{where}:{file_range.start}".encode("utf-8")).digest()[:8], "little")


def _blocks(file_range: span_chunks.FileRange, examples: Iterator[bytes]) -> Iterator[List[bytes]]:
    """The range's examples as lists to shuffle: the whole range (a bounded number of bytes),
    or for a rest-of-file range read row by row, blocks of ROW_BY_ROW_BLOCK_EXAMPLES."""
    if not file_range.row_by_row:
        yield list(examples)
        return
    while True:
        block = list(itertools.islice(examples, ROW_BY_ROW_BLOCK_EXAMPLES))
        if not block:
            return
        yield block


class SplitAndWriteRange(beam.DoFn):
    """Reads a range, splits its examples and writes each split's as one gzipped TFRecord file
    (named by `range_file_name`) in the split's folder `Split-<split>` of the range's entry
    folder; yields (split, examples written)."""

    def __init__(self, types: span_rows.ColumnTypes, rule: SplitRule, temp_folder: str):
        self._types = types
        self._rule = rule
        self._temp_folder = temp_folder
        self._rows = [beam.metrics.Metrics.counter(METRICS_NAMESPACE, f"rows_{name}") for name in rule.names]
        # The counter TFX's WriteSplit keeps, so a dashboard of CsvExampleGen runs reads the same.
        self._num_instances = beam.metrics.Metrics.counter(write_split.METRICS_NAMESPACE, "num_instances")
        self._row_by_row = _RowByRowCounter()

    def process(self, element: Tuple[int, int, span_chunks.FileRange, str]) -> Iterator[Tuple[str, int]]:
        input_split, file_index, file_range, entry_folder = element
        name = range_file_name(file_index, file_range)
        attempt = uuid.uuid4().hex
        temp_paths = [os.path.join(self._temp_folder, f"{index}-{name}.{attempt}") for index in range(len(self._rule.names))]
        counts = [0] * len(self._rule.names)
        order = np.random.default_rng(range_seed(file_range))
        options = tf.io.TFRecordOptions(compression_type="GZIP")
        examples = span_chunks.read_range(file_range, self._types, self._row_by_row)
        writers = [tf.io.TFRecordWriter(path, options) for path in temp_paths]
        try:
            for block in _blocks(file_range, examples):
                for position in order.permutation(len(block)):
                    record = block[position]
                    split = self._rule.split_of(record, input_split)
                    writers[split].write(record)
                    counts[split] += 1
                del block
        finally:
            for writer in writers:
                writer.close()
        # Every split gets a file, empty or not, as TFX's WriteSplit writes at least one shard.
        for index, temp_path in enumerate(temp_paths):
            split_folder = os.path.join(entry_folder, split_folder_name(self._rule.names[index]))
            tf.io.gfile.rename(temp_path, os.path.join(split_folder, name), overwrite=True)
            self._rows[index].inc(counts[index])
            yield self._rule.names[index], counts[index]
        self._num_instances.inc(sum(counts))


def split_folder_name(split: str) -> str:
    """The folder of a split's files, in an Examples artifact and in a kept span's entry."""
    return f"Split-{split}"


def _plan_numbered_ranges(numbered_file: Tuple[int, int, str, str], range_bytes: int) -> List[Tuple[int, int, span_chunks.FileRange, str]]:
    """(input split, file number, range, entry folder) of each range of a numbered file."""
    input_split, file_index, path, entry_folder = numbered_file
    return [(input_split, file_index, file_range, entry_folder) for file_range in span_chunks.plan_ranges(path, range_bytes)]


@dataclasses.dataclass(frozen=True)
class SpanPart:
    """The files of one span read through one input split: the unit written once and kept."""

    input_split: int
    span: int
    paths: Tuple[str, ...]
    hashes: Tuple[str, ...]
    key: str


def span_examples_key(
    paths: Sequence[str], hashes: Sequence[str], input_split: int, rule: SplitRule, schema_sha256: str, range_bytes: int, salt: str
) -> str:
    """The key of a span's kept examples: a SHA-256 of everything its files' bytes depend on.

    Args:
        paths: The span's files. Only each file's span folder and name count (the example
            order of a range is seeded by them, `range_seed`), not where the data root is.
        hashes: SHA-256 of each file's bytes, in the order of paths.
        input_split: The input split the files were read through (the output split when the
            input splits are the output splits).
        rule: The split rule (TFX's hash buckets, or the input splits).
        schema_sha256: SHA-256 of the curated schema the cells are typed by.
        range_bytes: Bytes per range: the files and the example order follow the ranges.
        salt: The fingerprint of the code that reads and writes them (`kept_examples_salt`).
    """
    settings = {
        "format": KEPT_FORMAT,
        "files": [["/".join(path.rstrip("/").split("/")[-2:]), digest] for path, digest in zip(paths, hashes)],
        "input_split": input_split,
        "splits": list(rule.names),
        "buckets": list(rule.buckets),
        "split_config": proto_utils.proto_to_json(rule.split_config),
        "schema": schema_sha256,
        "range_bytes": range_bytes,
        "code": salt,
        "libraries": span_statistics.library_versions(),
    }
    return hashlib.sha256(json.dumps(settings, sort_keys=True).encode("utf-8")).hexdigest()


def kept_examples_salt() -> str:
    """The fingerprint of the code that writes a span's examples (this module, the range reader
    and the row reader, with the project code they use: `pipeline.validation.code_scope`).
    Read when a step first asks, once per process, not at import."""
    return code_scope.fingerprint([__name__])


class SpanExamplesStore:
    """Each span's examples, kept from run to run: `<directory>/<key>/Split-<split>/<range
    files>` and the entry's MANIFEST_FILE, written once the files are in place."""

    def __init__(self, directory: str):
        self.directory = directory

    def entry(self, key: str) -> str:
        """The entry folder of a key."""
        return os.path.join(self.directory, key)

    def files(self, key: str) -> Optional[Dict[str, List[str]]]:
        """Split -> file names of a complete entry; None when the entry has no manifest, an
        unreadable one (logged) or a listed file is missing: it is then written again."""
        manifest_path = os.path.join(self.entry(key), MANIFEST_FILE)
        if not tf.io.gfile.exists(manifest_path):
            return None
        try:
            with tf.io.gfile.GFile(manifest_path) as manifest_file:
                manifest = json.load(manifest_file)
            files = {str(split): [str(name) for name in names] for split, names in manifest["files"].items()}
        except (ValueError, KeyError, AttributeError, TypeError, tf.errors.OpError) as error:
            logger.warning("The kept span examples %s have an unreadable manifest (%s): writing them again.", key[:12], error)
            return None
        for split, names in files.items():
            for name in names:
                if not tf.io.gfile.exists(os.path.join(self.entry(key), split_folder_name(split), name)):
                    logger.warning("The kept span examples %s lack %s of split %s: writing them again.", key[:12], name, split)
                    return None
        return files

    def commit(self, key: str, split_names: Sequence[str]) -> None:
        """Writes the entry's manifest: the files now in each split's folder."""
        entry = self.entry(key)
        files = {split: sorted(tf.io.gfile.listdir(os.path.join(entry, split_folder_name(split)))) for split in split_names}
        temp_path = os.path.join(entry, f".{MANIFEST_FILE}.{uuid.uuid4().hex}")
        with tf.io.gfile.GFile(temp_path, "w") as manifest_file:
            json.dump({"format": KEPT_FORMAT, "files": files}, manifest_file, sort_keys=True)
        tf.io.gfile.rename(temp_path, os.path.join(entry, MANIFEST_FILE), overwrite=True)


def window_file_name(part: SpanPart, name: str) -> str:
    """A kept range file's name in the window's artifact: its span and input split first, so
    spans whose files have the same names do not meet."""
    return f"span-{part.span}-{part.input_split}-{name}"


def _place(source: str, target: str, keep_source: bool) -> None:
    """Puts a range file in the window's artifact: a hard link to a kept file on a local file
    system (no byte is copied; removing either name leaves the other whole), a copy where links
    are not possible (an object store copies within the store), a rename of an unkept file."""
    if not keep_source:
        tf.io.gfile.rename(source, target, overwrite=True)
        return
    if "://" not in source and "://" not in target:
        try:
            if os.path.lexists(target):
                os.remove(target)
            os.link(source, target)
            return
        except OSError as error:
            logger.info("Copying %s, as it cannot be linked: %s", source, error)
    tf.io.gfile.copy(source, target, overwrite=True)


def split_rule(input_config: example_gen_pb2.Input, output_config: example_gen_pb2.Output) -> SplitRule:
    """Returns the split rule of the component's configs, as BaseExampleGenExecutor reads them.

    Raises:
        ValueError: when output splits are configured over more than one input split.
    """
    names = tuple(example_gen_utils.generate_output_split_names(input_config, output_config))
    if not output_config.split_config.splits:
        return SplitRule(names, (), output_config.split_config)
    if len(input_config.splits) != 1:
        raise ValueError(
            f"input_config has {len(input_config.splits)} splits; with output splits "
            f"({', '.join(names)}) ExampleGen reads exactly one input split"
        )
    buckets = tuple(itertools.accumulate(split.hash_buckets for split in output_config.split_config.splits))
    return SplitRule(names, buckets, output_config.split_config)


def _split_name(rule: SplitRule, serialized: bytes) -> str:
    return rule.names[rule.split_of(serialized, 0)]


def split_parts(output_config_json: str) -> span_statistics.Parts:
    """The window ExampleGen's split of each trip, for statistics kept per span and split.

    Args:
        output_config_json: The ExampleGen's output config (`example_gen_pb2.Output`, as JSON),
            with hash-bucket splits of its one input split.

    Raises:
        ValueError: when the config has no hash-bucket splits.
    """
    output_config = proto_utils.json_to_proto(output_config_json, example_gen_pb2.Output())
    rule = split_rule(example_gen_pb2.Input(splits=[example_gen_pb2.Input.Split(name="single_split", pattern="*")]), output_config)
    if not rule.buckets:
        raise ValueError(f"statistics per split need ExampleGen's hash-bucket splits; the output config has none: {output_config_json}")
    return span_statistics.Parts(
        rule.names, functools.partial(_split_name, rule), f"ExampleGen's split: {proto_utils.proto_to_json(output_config)}"
    )


def split_statistics_salt() -> str:
    """The salt of span statistics kept per split (`split_parts`): the fingerprint of the code
    that computes them, `span_statistics` and this module's split, with the project code they
    use (`pipeline.validation.code_scope`). The drift check, which computes and keeps them, and
    StatisticsGen, which merges them, take the same salt, so they find the same keys; a change
    of code they do not use (the Trainer's and Transform's modules, the gates and their
    thresholds, the runners, the serving code) keeps them. Read when a step first asks, once
    per process, not at import: every run and every Airflow DAG parse imports this module."""
    return code_scope.fingerprint([span_statistics.__name__, __name__])


class Executor(BaseExampleGenExecutor):
    """CsvExampleGen's executor for a window of spans (see the module docstring)."""

    def GetInputSourceToExamplePTransform(self) -> beam.PTransform:
        """Returns the PTransform that reads the span window (used by the base class' Do path)."""
        return _SpanWindowToExample

    def Do(self, input_dict: Dict[str, List[Any]], output_dict: Dict[str, List[Any]], exec_properties: Dict[str, Any]) -> None:
        """Reads, splits and writes the window a range at a time, then records on the artifact
        what BaseExampleGenExecutor.Do records (split names, payload and file format) and the
        spans and file fingerprints.

        Raises:
            ValueError: for a payload or file format other than tf.Examples in gzipped
                TFRecords, or output splits over several input splits.
            CsvFormatError: naming file, line, column and value, for a row the schema refuses.
        """
        self._log_startup(input_dict, output_dict, exec_properties)
        input_config = example_gen_pb2.Input()
        proto_utils.json_to_proto(exec_properties[standard_component_specs.INPUT_CONFIG_KEY], input_config)
        output_config = example_gen_pb2.Output()
        proto_utils.json_to_proto(exec_properties[standard_component_specs.OUTPUT_CONFIG_KEY], output_config)
        output_file_format = exec_properties.get(
            standard_component_specs.OUTPUT_FILE_FORMAT_KEY, example_gen_pb2.FILE_FORMAT_UNSPECIFIED
        )
        write_split.to_file_format_str(output_file_format)  # refuses any format but gzipped TFRecords
        payload_format = exec_properties.get(standard_component_specs.OUTPUT_DATA_FORMAT_KEY)
        if payload_format and payload_format != example_gen_pb2.FORMAT_TF_EXAMPLE:
            raise ValueError(
                f"output_data_format {example_gen_pb2.PayloadFormat.Name(payload_format)}: the span-window "
                "ExampleGen writes tf.Examples (FORMAT_TF_EXAMPLE) only"
            )
        rule = split_rule(input_config, output_config)
        settings = window_settings(exec_properties)
        input_base = exec_properties[standard_component_specs.INPUT_BASE_KEY]
        with tf.io.gfile.GFile(settings.schema_path, "rb") as schema_file:
            schema_sha256 = hashlib.sha256(schema_file.read()).hexdigest()
        salt = kept_examples_salt()
        if settings.source_hashes_dir:
            sha256_of = functools.partial(kept_file_sha256, hashes_dir=settings.source_hashes_dir)
        else:
            sha256_of = file_sha256
        parts: List[SpanPart] = []
        for input_split, split in enumerate(input_config.splits):
            for span, paths in window_files(input_base, split.pattern, settings.first_span, settings.last_span).items():
                hashes = tuple(sha256_of(path) for path in paths)
                key = span_examples_key(paths, hashes, input_split, rule, schema_sha256, settings.range_bytes, salt)
                parts.append(SpanPart(input_split, span, tuple(paths), hashes, key))
        common_header([path for part in parts for path in part.paths])
        types = span_rows.column_types(tfdv.load_schema_text(settings.schema_path))

        examples_artifacts = output_dict[standard_component_specs.EXAMPLES_KEY]
        examples = artifact_utils.get_single_instance(examples_artifacts)
        examples.split_names = artifact_utils.encode_split_names(list(rule.names))
        split_folders = [artifact_utils.get_split_uri(examples_artifacts, name) for name in rule.names]
        temp_folder = os.path.join(examples.uri, TEMP_FOLDER)
        # Without a kept folder, the spans are written to one inside the temporary folder and
        # moved into the artifact.
        keep = bool(settings.span_examples_dir)
        store = SpanExamplesStore(settings.span_examples_dir if keep else os.path.join(temp_folder, "spans"))
        kept = {part.key: store.files(part.key) for part in parts} if keep else {}
        to_write = list({part.key: part for part in parts if kept.get(part.key) is None}.values())
        for folder in split_folders + [temp_folder] + [
            os.path.join(store.entry(part.key), split_folder_name(name)) for part in to_write for name in rule.names
        ]:
            tf.io.gfile.makedirs(folder)
        # (input split, file number in its span, path, entry folder): the file number names the range files.
        numbered_files = [
            (part.input_split, file_index, path, store.entry(part.key)) for part in to_write for file_index, path in enumerate(part.paths)
        ]
        logger.info(
            "Generating examples of spans %d..%d: %d span(s) kept from an earlier run, %d file(s) of %d span(s) read a range at a time.",
            settings.first_span,
            settings.last_span,
            len(parts) - len(to_write),
            len(numbered_files),
            len(to_write),
        )
        try:
            if numbered_files:
                with self._make_beam_pipeline() as pipeline:
                    _ = (
                        pipeline
                        | "ListFiles" >> beam.Create(numbered_files)
                        | "PlanRanges" >> beam.FlatMap(_plan_numbered_ranges, settings.range_bytes)
                        # Ranges, not files or examples, are what the runner spreads over its workers.
                        | "SpreadRanges" >> beam.Reshuffle()
                        | "SplitAndWriteRanges" >> beam.ParDo(SplitAndWriteRange(types, rule, temp_folder))
                    )
                _log_rows(pipeline.result, rule.names)
                for part in to_write:
                    store.commit(part.key, rule.names)
            for part in parts:
                # A kept entry's manifest was read above; a written one's is read once now.
                files = kept.get(part.key) or store.files(part.key)
                if files is None:
                    raise RuntimeError(f"the examples of span {part.span} were written but their entry {store.entry(part.key)} is incomplete")
                for index, split in enumerate(rule.names):
                    for name in files[split]:
                        source = os.path.join(store.entry(part.key), split_folder_name(split), name)
                        _place(source, os.path.join(split_folders[index], window_file_name(part, name)), keep)
        finally:
            if tf.io.gfile.exists(temp_folder):
                tf.io.gfile.rmtree(temp_folder)

        if payload_format:
            for artifact in examples_artifacts:
                examples_utils.set_payload_format(artifact, payload_format)
        if output_file_format:
            for artifact in examples_artifacts:
                examples_utils.set_file_format(artifact, write_split.to_file_format_str(output_file_format))
        record_window(examples, exec_properties, {path: digest for part in parts for path, digest in zip(part.paths, part.hashes)})
        if keep:
            written = {part.key for part in to_write}
            recorded: Dict[str, Dict[str, dict]] = {}
            for part in parts:
                recorded.setdefault(str(part.span), {})[input_config.splits[part.input_split].name] = {
                    "key": part.key,
                    "reused": part.key not in written,
                }
            examples.set_string_custom_property(SPAN_EXAMPLES_PROPERTY, json.dumps(recorded, sort_keys=True))
            examples.set_string_custom_property(SPAN_EXAMPLES_DIR_PROPERTY, settings.span_examples_dir)


def record_window(examples: Any, exec_properties: Dict[str, Any], hashes: Optional[Dict[str, str]] = None) -> None:
    """Records on the Examples artifact the window's last span, its spans and each file's
    fingerprint (what `pipeline.components.artifacts` readers and the run summary show).

    Args:
        examples: The output Examples artifact.
        exec_properties: The component's execution properties.
        hashes: Path -> SHA-256 of files already hashed; the others are hashed here.
    """
    settings = window_settings(exec_properties)
    input_base = exec_properties[standard_component_specs.INPUT_BASE_KEY]
    pattern = json.loads(exec_properties[standard_component_specs.INPUT_CONFIG_KEY])["splits"][0]["pattern"]
    files = window_files(input_base, pattern, settings.first_span, settings.last_span)
    hashes = hashes or {}
    examples.span = settings.last_span
    examples.set_string_custom_property(SPANS_PROPERTY, ",".join(str(span) for span in sorted(files)))
    examples.set_string_custom_property(
        SPAN_FILES_PROPERTY,
        json.dumps({path: hashes.get(path) or file_sha256(path) for paths in files.values() for path in paths}, sort_keys=True),
    )


def _log_rows(result: beam.runners.runner.PipelineResult, split_names: Sequence[str]) -> None:
    """Logs the rows written per split, from the pipeline's Beam counters."""
    counters = result.metrics().query(beam.metrics.MetricsFilter().with_namespace(METRICS_NAMESPACE))["counters"]
    written = {counter.key.metric.name: counter.committed for counter in counters}
    logger.info(
        "Examples generated: %s",
        ", ".join(f"{name} {written.get(f'rows_{name}', 0):,}" for name in split_names),
    )
