"""Statistics of a span computed once: TFDV's partial statistics per span, kept from run to run
and merged for any group of spans.

TFDV computes statistics by combining: each worker adds its trips to the accumulators of
TFDV's combiner generators (counts, KLL quantile sketches, Misra-Gries and KMV sketches of
values), the runner merges the workers' accumulators, and the merged accumulators are turned
into the DatasetFeatureStatistics proto at the end. The protos themselves do not merge (their
quantiles are final), but the accumulators do, exactly as TFDV merges its workers'.

So the data checks keep the accumulators of each span's trips, per part (`Parts`: the
pipeline's are ExampleGen's train and eval splits), in a folder of the pipeline root
(`SpanStatisticsStore`, filled by `span_partials`), under a key of everything they depend on:
the span files' SHA-256, the part, the columns read, the schema, the statistics options, the
versions of TFDV and of the libraries that read and split (`library_versions`), and the
fingerprint of the code that computes them (`code_scope`: the modules that read, split and
count, and the project code they use). A later run whose window holds the span reads
them instead of reading the span's files again, and the statistics of any group of
spans and parts (the newest span, the drift check's reference, the window's train split) are
their accumulators merged (`merged_statistics`): what TFDV would compute over those trips with
one worker per span and part. What the key does not match is computed again, in the
component's Beam pipeline.
"""
import dataclasses
import hashlib
import json
import logging
import os
import pickle
import tempfile
import uuid
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple

import apache_beam as beam
import pyarrow as pa
import tensorflow as tf
import tensorflow_data_validation as tfdv
from tensorflow_data_validation.statistics import stats_impl
from tensorflow_data_validation.statistics.generators.stats_generator import CombinerStatsGenerator
from tensorflow_metadata.proto.v0 import schema_pb2, statistics_pb2
import tfx
import tfx_bsl

from pipeline import configs
from pipeline.spans import file_sha256
from pipeline.validation import span_batches, span_rows

logger = logging.getLogger(__name__)

# Increased when what is stored changes shape, so an older store's files are not read as new ones.
STORE_FORMAT = 1
# One span's partial statistics: one accumulator per generator of `generators(options)`.
Partials = List[Any]


def _whole(serialized: bytes) -> str:
    del serialized
    return "all"


@dataclasses.dataclass(frozen=True)
class Parts:
    """How a span's trips are divided before their statistics are kept: by ExampleGen's split
    (so the window's train and eval statistics are merged from spans too), or not at all.

    `part_of` takes a trip's serialized tf.Example (ExampleGen's bytes) and names its part;
    `description` says what decides it, for the key.
    """

    names: Tuple[str, ...]
    part_of: Callable[[bytes], str]
    description: str


WHOLE_SPAN = Parts(("all",), _whole, "the whole span")


# Quantile buckets TFDV keeps per numeric column; the drift buckets are drawn from them.
QUANTILE_BUCKETS = 100


def statistics_options(schema: schema_pb2.Schema) -> tfdv.StatsOptions:
    """TFDV options of the statistics kept per span (the newest-span checks' and the window's):
    types from the schema, fine quantiles, and sketched top values, so every generator is a
    combiner (the sketches count exactly up to 1,024 distinct values of a column)."""
    return tfdv.StatsOptions(
        schema=schema,
        infer_type_from_schema=True,
        num_histogram_buckets=configs.DRIFT_HISTOGRAM_BUCKETS,
        num_quantiles_histogram_buckets=QUANTILE_BUCKETS,
        use_sketch_based_topk_uniques=True,
    )


def window_header(span_files: Mapping[int, Sequence[str]]) -> List[str]:
    """The columns read from every span of a window: any file's (`span_rows.common_header`)."""
    return span_rows.common_header([path for span in sorted(span_files) for path in span_files[span]])


def generators(options: tfdv.StatsOptions) -> List[CombinerStatsGenerator]:
    """TFDV's generators for `options`, every one a combiner (whose accumulators merge).

    Raises:
        ValueError: when `options` ask for a generator that is not a combiner (sketch-free
            top-k, slicing, semantic domains): its statistics could not be kept per span.
    """
    found = stats_impl.get_generators(options)
    others = [type(generator).__name__ for generator in found if not isinstance(generator, CombinerStatsGenerator)]
    if others:
        raise ValueError(f"statistics kept per span need TFDV's combiner generators only; these options add {others}")
    return found


class _PartialStatistics(beam.CombineFn):
    """RecordBatches -> the Partials of all of them (not the proto: they are kept and merged)."""

    def __init__(self, options: tfdv.StatsOptions):
        self._options = options
        self.generators: List[CombinerStatsGenerator] = []

    def setup(self) -> None:
        self.generators = generators(self._options)
        for generator in self.generators:
            generator.setup()

    def create_accumulator(self) -> Partials:
        return [generator.create_accumulator() for generator in self.generators]

    def add_input(self, partials: Partials, batch: pa.RecordBatch) -> Partials:
        return [generator.add_input(partial, batch) for generator, partial in zip(self.generators, partials)]

    def merge_accumulators(self, many: Sequence[Partials]) -> Partials:
        many = list(many)
        return [generator.merge_accumulators([partials[i] for partials in many]) for i, generator in enumerate(self.generators)]

    def compact(self, partials: Partials) -> Partials:
        return [generator.compact(partial) for generator, partial in zip(self.generators, partials)]

    def extract_output(self, partials: Partials) -> Partials:
        return self.compact(partials)


def merged_statistics(many: Sequence[Partials], options: tfdv.StatsOptions) -> statistics_pb2.DatasetFeatureStatisticsList:
    """The statistics of the trips of all `many` (each one span's Partials) together."""
    combine = _PartialStatistics(options)
    combine.setup()
    return stats_impl.extract_statistics_output(combine.merge_accumulators(many), combine.generators)


def library_versions() -> Dict[str, str]:
    """The versions of the libraries whose code computes what is kept per span: TFDV's
    statistics, TensorFlow (the join and the example encoding), tfx_bsl and pyarrow (the CSV
    reader) and TFX (ExampleGen's split)."""
    return {"tfdv": tfdv.__version__, "tensorflow": tf.__version__, "tfx_bsl": tfx_bsl.__version__, "pyarrow": pa.__version__, "tfx": tfx.__version__}


def span_key(
    file_hashes: Sequence[str], header: Sequence[str], schema: schema_pb2.Schema, options: tfdv.StatsOptions, salt: str, part: str = ""
) -> str:
    """The key of one part of a span's Partials: a SHA-256 of everything they depend on.

    Args:
        file_hashes: SHA-256 of each of the span's files (order does not matter).
        header: The columns read (a column the span's files lack is counted missing).
        schema: The schema the columns are typed by.
        options: The statistics options.
        salt: The fingerprint of the code that computes the Partials (a change of it computes
            the span again; the pipeline's is `example_gen.split_statistics_salt`).
        part: The part's name and what decides the parts (`Parts`).
    """
    described = {
        "format": STORE_FORMAT,
        "libraries": library_versions(),
        "files": sorted(file_hashes),
        "header": sorted(header),
        "schema": schema.SerializeToString(deterministic=True).hex(),
        "options": {
            name: getattr(options, name)
            for name in (
                "num_histogram_buckets",
                "num_quantiles_histogram_buckets",
                "num_values_histogram_buckets",
                "num_top_values",
                "num_rank_histogram_buckets",
                "epsilon",
                "frequency_threshold",
                "weighted_frequency_threshold",
                "use_sketch_based_topk_uniques",
            )
        },
        "salt": salt,
        "part": part,
    }
    return hashlib.sha256(json.dumps(described, sort_keys=True).encode()).hexdigest()


class SpanStatisticsStore:
    """A folder (any path tf.io.gfile writes: local, GCS) of what is computed once per span,
    one file per key: Partials here, each table's result on a span in
    `pipeline.components.external_check`.

    Written whole or not at all (a temporary file renamed into place), so a run that stops
    midway leaves no half file; two runs computing the same key write the same content.
    """

    def __init__(self, directory: str):
        self.directory = directory

    def path(self, key: str) -> str:
        return os.path.join(self.directory, f"{key}{configs.SPAN_STATISTICS_SUFFIX}")

    def load(self, key: str) -> Optional[Any]:
        """What is stored under `key`, or None.

        Raises:
            ValueError: when the stored file cannot be read back (naming it, to delete it).
        """
        path = self.path(key)
        if not tf.io.gfile.exists(path):
            return None
        with tf.io.gfile.GFile(path, "rb") as stored:
            data = stored.read()
        try:
            return pickle.loads(data)
        except Exception as error:
            raise ValueError(f"span statistics {path} cannot be read ({error}); delete the file to compute them again") from error

    def save(self, key: str, partials: Any) -> str:
        """Writes `partials` (any picklable value) under `key`; returns the file's path."""
        tf.io.gfile.makedirs(self.directory)
        path = self.path(key)
        temporary = f"{path}.tmp-{uuid.uuid4().hex}"
        with tf.io.gfile.GFile(temporary, "wb") as stored:
            stored.write(pickle.dumps(partials, protocol=pickle.HIGHEST_PROTOCOL))
        tf.io.gfile.rename(temporary, path, overwrite=True)
        return path


def span_partials(
    span_files: Mapping[int, Sequence[str]],
    header: List[str],
    schema: schema_pb2.Schema,
    options: tfdv.StatsOptions,
    store: Optional[SpanStatisticsStore],
    salt: str = "",
    file_hashes: Optional[Mapping[str, str]] = None,
    pipeline: Optional[beam.Pipeline] = None,
    parts: Parts = WHOLE_SPAN,
) -> Dict[int, Dict[str, Dict[str, Any]]]:
    """The Partials of each part of each span: read from `store` where kept, else computed in
    one Beam pipeline (and kept, when there is a store).

    Args:
        span_files: Span -> its CSV files.
        header: The columns read (every file's, `span_rows.common_header`).
        schema: The schema, for the column types.
        options: The statistics options (`generators` must accept them).
        store: Where Partials are kept; None computes every span.
        salt: The fingerprint of the code that computes the Partials, part of each key.
        file_hashes: Path -> SHA-256 where already known (the Examples artifact records them);
            other files are hashed here.
        pipeline: The Beam pipeline to compute in; None runs a local DirectRunner pipeline.
        parts: How each span's trips are divided (default: not at all, one part "all").

    Returns:
        Span -> part -> {"key", "partials", "reused" (True when read from the store)}.

    Raises:
        pipeline.validation.span_rows.CsvFormatError: when a file is malformed.
    """
    generators(options)  # fails before any reading when the options cannot be kept per span
    hashes = dict(file_hashes or {})
    found: Dict[int, Dict[str, Dict[str, Any]]] = {}
    for span, paths in sorted(span_files.items()):
        span_hashes = [hashes.get(path) or file_sha256(path) for path in paths]
        found[span] = {}
        for name in parts.names:
            key = span_key(span_hashes, header, schema, options, salt, f"{name} of {parts.description}")
            kept = store.load(key) if store is not None else None
            found[span][name] = {"key": key, "partials": kept, "reused": kept is not None}
    # A span with any part not kept is read again, whole.
    missing = {span: list(span_files[span]) for span, by_part in found.items() if any(e["partials"] is None for e in by_part.values())}
    if missing:
        # The workers write each part's Partials where the driver reads them back: the store,
        # or without one a folder of this machine's (a local run).
        target = store or SpanStatisticsStore(tempfile.mkdtemp(prefix="span-statistics-"))
        try:
            keys = {span: {name: entry["key"] for name, entry in found[span].items()} for span in missing}
            _compute({span: (paths, keys[span]) for span, paths in missing.items()}, header, span_rows.column_types(schema), options, parts, target, pipeline)
            for span in missing:
                for name, entry in found[span].items():
                    entry.update(partials=target.load(entry["key"]), reused=False)
                    if entry["partials"] is None:
                        # The pipeline ran to the end: a part no trip of the span fell in.
                        entry["partials"] = _empty(options)
                        target.save(entry["key"], entry["partials"])
        finally:
            if store is None:
                tf.io.gfile.rmtree(target.directory)
    logger.info("span statistics: spans %s computed, the others of %s reused", sorted(missing), sorted(found))
    return found


def _empty(options: tfdv.StatsOptions) -> Partials:
    combine = _PartialStatistics(options)
    combine.setup()
    return combine.compact(combine.create_accumulator())


def _compute(
    span_work: Dict[int, Tuple[List[str], Dict[str, str]]],
    header: List[str],
    types: span_rows.ColumnTypes,
    options: tfdv.StatsOptions,
    parts: Parts,
    store: SpanStatisticsStore,
    pipeline: Optional[beam.Pipeline],
) -> None:
    """Computes the Partials of each part of each span (span -> its files and part -> key),
    one branch per span in one Beam pipeline, and saves them in `store`."""
    with pipeline if pipeline is not None else beam.Pipeline() as running:
        for span, (paths, keys) in span_work.items():
            _ = (
                running
                | f"Read[span-{span}]" >> span_batches.ReadSpanFiles(paths, header, types, parts.part_of)
                | f"Partials[span-{span}]" >> beam.CombinePerKey(_PartialStatistics(options))
                | f"Keep[span-{span}]" >> beam.MapTuple(lambda part, partials, keys=keys: store.save(keys[part], partials))
            )
