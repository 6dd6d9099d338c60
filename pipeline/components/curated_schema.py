"""ImportSchemaGen's job, with the project's code in its cache key.

TFX's ImportSchemaGen is keyed by the schema file's path only: after an owner commits a new
curated schema (`python -m pipeline.accept` proposes one), it would be answered from the cache
with the old copy, while ExampleGen, which reads the file itself, types rows with the new one.
This component takes the project's code fingerprint, which covers the curated schema under
`pipeline/schema/`, so an edited schema is imported again.
"""
import os

import tensorflow_data_validation as tfdv
from tfx.dsl.component.experimental.annotations import OutputArtifact, Parameter
from tfx.dsl.component.experimental.decorators import component
from tfx.types import standard_artifacts
from tfx.utils import io_utils

SCHEMA_FILE_NAME = "schema.pbtxt"


@component
def ImportCuratedSchema(
    schema: OutputArtifact[standard_artifacts.Schema],
    schema_file: Parameter[str],
    code_fingerprint: Parameter[str] = "",
) -> None:
    """Copies the curated schema file into the Schema artifact, after checking that it parses.

    `code_fingerprint` (`pipeline.runners.code_fingerprint.project_fingerprint`) is part of the cache
    key only.
    """
    del code_fingerprint
    tfdv.load_schema_text(schema_file)  # a schema that does not parse fails here, by name
    io_utils.copy_file(schema_file, os.path.join(schema.uri, SCHEMA_FILE_NAME), overwrite=True)
