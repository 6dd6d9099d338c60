"""Statistics of a span computed once: TFDV's partial statistics per span, kept from run to run
and merged for any group of spans.

TFDV computes statistics by combining: each worker adds its trips to the accumulators of
TFDV's combiner generators (counts, KLL quantile sketches, Misra-Gries and KMV sketches of
values), the runner merges the workers' accumulators, and the merged accumulators are turned
into the DatasetFeatureStatistics proto at the end. The protos themselves do not merge (their
quantiles are final), but the accumulators do, exactly as TFDV merges its workers'.

So the data checks keep, per span, the accumulators of that span's trips (`span_partials`),
in a folder of the pipeline root (`SpanStatisticsStore`), under a key of everything they
depend on: the span files' SHA-256, the columns read, the schema, the statistics options,
TFDV's version and the project's code fingerprint. A later run whose window holds the span
reads them instead of reading the span's files again, and the statistics of several spans
(the drift check's reference: every span of the window before the newest) are their spans'
accumulators merged (`merged_statistics`), what TFDV would compute over those spans with one
worker per span. What the key does not match is computed again, in the component's Beam
pipeline.
"""
import hashlib
import json
import logging
import os
import pickle
import tempfile
import uuid
from typing import Any, Dict, List, Mapping, Optional, Sequence

import apache_beam as beam
import pyarrow as pa
import tensorflow as tf
import tensorflow_data_validation as tfdv
from tensorflow_data_validation.statistics import stats_impl
from tensorflow_data_validation.statistics.generators.stats_generator import CombinerStatsGenerator
from tensorflow_metadata.proto.v0 import schema_pb2, statistics_pb2

from pipeline.spans import file_sha256
from pipeline.validation import span_batches, span_rows

logger = logging.getLogger(__name__)

# Raised when what is stored changes shape, so an older store's files are not read as new ones.
STORE_FORMAT = 1
# One span's partial statistics: one accumulator per generator of `generators(options)`.
Partials = List[Any]


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
        self._generators: List[CombinerStatsGenerator] = []

    def setup(self) -> None:
        self._generators = generators(self._options)
        for generator in self._generators:
            generator.setup()

    def create_accumulator(self) -> Partials:
        return [generator.create_accumulator() for generator in self._generators]

    def add_input(self, partials: Partials, batch: pa.RecordBatch) -> Partials:
        return [generator.add_input(partial, batch) for generator, partial in zip(self._generators, partials)]

    def merge_accumulators(self, many: Sequence[Partials]) -> Partials:
        many = list(many)
        return [generator.merge_accumulators([partials[i] for partials in many]) for i, generator in enumerate(self._generators)]

    def compact(self, partials: Partials) -> Partials:
        return [generator.compact(partial) for generator, partial in zip(self._generators, partials)]

    def extract_output(self, partials: Partials) -> Partials:
        return self.compact(partials)


def merged_statistics(many: Sequence[Partials], options: tfdv.StatsOptions) -> statistics_pb2.DatasetFeatureStatisticsList:
    """The statistics of the trips of all `many` (each one span's Partials) together."""
    found = generators(options)
    for generator in found:
        generator.setup()
    merged = [generator.merge_accumulators([partials[i] for partials in many]) for i, generator in enumerate(found)]
    return stats_impl.extract_statistics_output(merged, found)


def span_key(file_hashes: Sequence[str], header: Sequence[str], schema: schema_pb2.Schema, options: tfdv.StatsOptions, salt: str) -> str:
    """The key of one span's Partials: a SHA-256 of everything they depend on.

    Args:
        file_hashes: SHA-256 of each of the span's files (order does not matter).
        header: The columns read (a column the span's files lack is counted missing).
        schema: The schema the columns are typed by.
        options: The statistics options.
        salt: The project's code fingerprint (a change of the code computes the span again).
    """
    described = {
        "format": STORE_FORMAT,
        "tfdv": tfdv.__version__,
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
    }
    return hashlib.sha256(json.dumps(described, sort_keys=True).encode()).hexdigest()


class SpanStatisticsStore:
    """A folder (any path tf.io.gfile writes: local, GCS) of Partials, one file per key.

    Written whole or not at all (a temporary file renamed into place), so a run that stops
    midway leaves no half file; two runs computing the same key write the same content.
    """

    def __init__(self, directory: str):
        self.directory = directory

    def path(self, key: str) -> str:
        return os.path.join(self.directory, f"{key}.partials")

    def load(self, key: str) -> Optional[Partials]:
        """The Partials stored under `key`, or None.

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

    def save(self, key: str, partials: Partials) -> str:
        """Writes `partials` under `key`; returns the file's path."""
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
) -> Dict[int, Dict[str, Any]]:
    """Each span's Partials: read from `store` where kept, else computed in one Beam pipeline
    (and kept, when there is a store).

    Args:
        span_files: Span -> its CSV files.
        header: The columns read (every file's, `span_rows.common_header`).
        schema: The schema, for the column types.
        options: The statistics options (`generators` must accept them).
        store: Where Partials are kept; None computes every span.
        salt: The project's code fingerprint, part of each key.
        file_hashes: Path -> SHA-256 where already known (the Examples artifact records them);
            other files are hashed here.
        pipeline: The Beam pipeline to compute in; None runs a local DirectRunner pipeline.

    Returns:
        Span -> {"key", "partials", "reused" (True when read from the store)}.

    Raises:
        pipeline.validation.span_rows.CsvFormatError: when a file is malformed.
    """
    generators(options)  # fails before any reading when the options cannot be kept per span
    hashes = dict(file_hashes or {})
    found: Dict[int, Dict[str, Any]] = {}
    for span, paths in sorted(span_files.items()):
        key = span_key([hashes.get(path) or file_sha256(path) for path in paths], header, schema, options, salt)
        kept = store.load(key) if store is not None else None
        found[span] = {"key": key, "partials": kept, "reused": kept is not None}
    missing = {span: list(span_files[span]) for span, entry in found.items() if entry["partials"] is None}
    if missing:
        # The workers write each span's Partials where the driver reads them back: the store,
        # or without one a folder of this machine's (a local run).
        target = store or SpanStatisticsStore(tempfile.mkdtemp(prefix="span-statistics-"))
        try:
            _compute({found[span]["key"]: paths for span, paths in missing.items()}, header, span_rows.column_types(schema), options, target, pipeline)
            for span in missing:
                found[span]["partials"] = target.load(found[span]["key"])
                if found[span]["partials"] is None:
                    raise RuntimeError(f"the statistics pipeline wrote no statistics of span {span} in {target.directory}")
        finally:
            if store is None:
                tf.io.gfile.rmtree(target.directory)
    logger.info(
        "span statistics: %s computed, %s reused", [s for s in found if not found[s]["reused"]], [s for s in found if found[s]["reused"]]
    )
    return found


def _compute(
    key_files: Dict[str, List[str]],
    header: List[str],
    types: span_rows.ColumnTypes,
    options: tfdv.StatsOptions,
    store: SpanStatisticsStore,
    pipeline: Optional[beam.Pipeline],
) -> None:
    """Computes the Partials of each key's files, one branch per span in one Beam pipeline,
    and saves them in `store`."""
    with pipeline if pipeline is not None else beam.Pipeline() as running:
        for key, paths in key_files.items():
            _ = (
                running
                | f"Read[{key[:12]}]" >> span_batches.ReadSpanFiles(paths, header, types)
                | f"Partials[{key[:12]}]" >> beam.CombineGlobally(_PartialStatistics(options))
                | f"Keep[{key[:12]}]" >> beam.Map(lambda partials, key=key: store.save(key, partials))
            )
