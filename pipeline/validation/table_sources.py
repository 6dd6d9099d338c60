"""Where the external tables come from: the sources an entry point resolves and fingerprints
when it builds the pipeline.

Each source names a table (`modules.external.TABLES`), its file and the SHA-256 its content
had at build time. `pipeline.components.external_table_gen` snapshots exactly that content, so
a table changed after the build fails the run instead of training on other data, and a
changed table is a new parameter, never answered from TFX's cache.
"""
import dataclasses
import json
import os
from typing import Dict, Mapping, Optional, Sequence, Tuple

from modules import external
from pipeline.spans import file_sha256


def _exists(uri: str) -> bool:
    import tensorflow as tf  # entry points resolve their sources before they pay for TensorFlow

    return tf.io.gfile.exists(uri)


@dataclasses.dataclass(frozen=True)
class ExternalTableSource:
    """Where a table comes from and what its content was when the pipeline was built."""

    name: str
    uri: str
    sha256: str


def table_source(name: str, uri: str, sha256: Optional[str] = None) -> ExternalTableSource:
    """Describes table `name` read from `uri`, fingerprinting the file unless `sha256` is given.

    Args:
        name: One of `modules.external.TABLES`.
        uri: The file: a local path (made absolute, so the record does not depend on the
            working directory) or any URI tf.io.gfile reads, such as gs://.
        sha256: The content's SHA-256, when `uri` is where the pipeline's steps will find the
            file (say inside a container image) and it is not readable here.

    Returns:
        The source, fingerprinted.

    Raises:
        ValueError: when `name` is not one of `modules.external.TABLES`.
        FileNotFoundError: when `sha256` is not given and the file does not exist.
    """
    if name not in external.TABLES:
        raise ValueError(f"unknown external table {name!r}; the model joins {sorted(external.TABLES)}")
    if "://" not in uri and sha256 is None:
        uri = os.path.abspath(uri)
    if sha256 is None and not _exists(uri):
        raise FileNotFoundError(f"external table {name!r}: no file at {uri}")
    return ExternalTableSource(name=name, uri=uri, sha256=sha256 or file_sha256(uri))


# The repository's data/ folder, where the shipped, versioned tables live.
REPO_DATA_ROOT = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "data")


def shipped_table_path(name: str, data_root: str = REPO_DATA_ROOT) -> str:
    """The path of table `name` under a data root laid out like the shipped `data/`."""
    from pipeline import configs

    return os.path.join(data_root, configs.EXTERNAL_TABLE_FILES[name])


def parse_overrides(values: Sequence[str]) -> Dict[str, str]:
    """Parses `NAME=PATH` strings (a command line's or an environment variable's).

    Args:
        values: e.g. `["us_il_holidays=data/external/us_il_holidays/v2/holidays.csv"]`.

    Returns:
        Table name -> path.

    Raises:
        ValueError: when a value is not NAME=PATH or names an unknown table.
    """
    overrides: Dict[str, str] = {}
    for value in values:
        name, separator, path = value.partition("=")
        if not separator or not name or not path:
            raise ValueError(f"external table {value!r} is not NAME=PATH")
        if name not in external.TABLES:
            raise ValueError(f"unknown external table {name!r}; the model joins {sorted(external.TABLES)}")
        overrides[name] = path
    return overrides


def resolve_sources(
    overrides: Optional[Mapping[str, str]] = None, data_root: str = REPO_DATA_ROOT
) -> Tuple[ExternalTableSource, ...]:
    """Every table the model joins, fingerprinted now.

    Args:
        overrides: Table name -> file, replacing the default file of that table.
        data_root: Where the default files are, laid out like the shipped `data/`
            (`pipeline.configs.EXTERNAL_TABLE_FILES`); the repository's `data/` by default.

    Returns:
        One source per table of `modules.external.TABLES`, by name.

    Raises:
        ValueError: when `overrides` names an unknown table.
        FileNotFoundError: when a table's file does not exist.
    """
    overrides = dict(overrides or {})
    unknown = sorted(set(overrides) - set(external.TABLES))
    if unknown:
        raise ValueError(f"unknown external tables {unknown}; the model joins {sorted(external.TABLES)}")
    return tuple(
        table_source(name, overrides.get(name) or shipped_table_path(name, data_root)) for name in sorted(external.TABLES)
    )


def refingerprint(sources: Sequence[ExternalTableSource]) -> Tuple[ExternalTableSource, ...]:
    """The same files, fingerprinted again: for a process that builds a pipeline per run (the
    watcher, the replay), so each run's parameter describes the file as it is then."""
    return tuple(table_source(source.name, source.uri) for source in sources)


def preprocessing_config(table_files: Mapping[str, str]) -> Dict[str, Dict[str, str]]:
    """`preprocessing_fn`'s custom_config entry that names each table's file.

    Args:
        table_files: Table name -> file, e.g. `{s.name: s.uri for s in resolve_sources()}`.

    Returns:
        `{modules.external.TABLES_CONFIG_KEY: table_files}`.
    """
    return {external.TABLES_CONFIG_KEY: dict(table_files)}


def sources_json(sources: Sequence[ExternalTableSource]) -> str:
    """Serializes the sources for ExternalTableGen's parameter."""
    return json.dumps([dataclasses.asdict(source) for source in sources], sort_keys=True)


def check_sources(sources: Sequence[ExternalTableSource]) -> None:
    """Raises ValueError unless `sources` names every table the model joins, once each."""
    names = [source.name for source in sources]
    missing = sorted(set(external.TABLES) - set(names))
    unknown = sorted(set(names) - set(external.TABLES))
    repeated = sorted({name for name in names if names.count(name) > 1})
    if missing or unknown or repeated:
        raise ValueError(
            f"external tables: the model joins {sorted(external.TABLES)}; "
            f"missing {missing}, unknown {unknown}, given twice {repeated}"
        )


