"""ExternalTableGen: imports the external tables as a tracked artifact.

It validates each configured table (`modules.external.TABLES`), copies it into its output
artifact and records the source URI and the content's SHA-256 in ML Metadata. The fingerprint
is also the component's parameter, computed when the pipeline is built
(`pipeline.validation.table_sources`), so a changed table is never answered from the cache: it
is imported again, and Transform, Trainer and the rest rerun on it.
"""
import hashlib
import json
import logging
from typing import Dict

import tensorflow as tf
from tfx.dsl.component.experimental.annotations import OutputArtifact, Parameter
from tfx.dsl.component.experimental.decorators import component

from modules import external
from pipeline.components.artifacts import TABLES_PROPERTY, ExternalTables, table_file

logger = logging.getLogger(__name__)


class ExternalTableChangedError(RuntimeError):
    """A table's file changed between building the pipeline and running it."""


def snapshot_tables(sources: str, output_uri: str) -> Dict[str, dict]:
    """Validates each table and copies it into `output_uri`; ExternalTableGen's work.

    Args:
        sources: `sources_json(...)`: name, URI and the SHA-256 the file had when the pipeline
            was built.
        output_uri: The ExternalTables artifact's folder.

    Returns:
        Per table: source_uri, sha256, rows, first_key, last_key.

    Raises:
        ExternalTableChangedError: when a file's content is not the one the pipeline was built for.
        modules.external.ExternalTableError: when a table is not UTF-8 text or is malformed.
    """
    records: Dict[str, dict] = {}
    for source in json.loads(sources):
        with tf.io.gfile.GFile(source["uri"], "rb") as source_file:
            content = source_file.read()
        sha256 = hashlib.sha256(content).hexdigest()
        if sha256 != source["sha256"]:
            raise ExternalTableChangedError(
                f"external table {source['name']!r} ({source['uri']}) changed after the pipeline was built: "
                f"SHA-256 {sha256}, expected {source['sha256']}; build the pipeline again"
            )
        try:
            text = content.decode("utf-8")
        except UnicodeDecodeError as error:
            raise external.ExternalTableError(
                f"external table {source['name']!r} ({source['uri']}) is not UTF-8 text: {error}"
            ) from error
        table = external.parse_table(text, external.TABLES[source["name"]], source["uri"])
        with tf.io.gfile.GFile(table_file(output_uri, source["name"]), "wb") as snapshot:
            snapshot.write(content)
        records[source["name"]] = {
            "source_uri": source["uri"],
            "sha256": sha256,
            "rows": len(table.keys),
            "first_key": table.key_text(table.keys[0]),
            "last_key": table.key_text(table.keys[-1]),
        }
        logger.info("external table %s: %d rows from %s, sha256 %s", source["name"], len(table.keys), source["uri"], sha256)
    return records


@component
def ExternalTableGen(
    tables: OutputArtifact[ExternalTables],
    sources: Parameter[str],
    code_fingerprint: Parameter[str] = "",
) -> None:
    """Validates each external table and snapshots it into the artifact, with its fingerprint.

    `sources` is `sources_json(...)`; `code_fingerprint` is part of the cache key only. A file
    changed since the pipeline was built, or a malformed one, fails the run here, before
    anything reads it (see `snapshot_tables`).
    """
    del code_fingerprint
    records = snapshot_tables(sources, tables.uri)
    tables.set_string_custom_property(TABLES_PROPERTY, json.dumps(records, sort_keys=True))
