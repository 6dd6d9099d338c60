"""The output dir's layout and the ML Metadata connection: the one home of both.

A run's output dir holds:
- `metadata.db`: ML Metadata (SQLite), every run's executions, artifacts and lineage, unless
  the metadata setting names a MySQL/MariaDB database instead (`MetadataSetting`);
- `pipeline_root/`: the artifacts, one folder per component;
- `serving_model/`: the versions the Pusher wrote, TF Serving's model base path;
- `reports/`: one HTML report per run (`pipeline.ops.report`).

Every entry point and tool finds these through `OutputLayout`, and opens ML Metadata through
one `MetadataSetting`: parsed once from `--metadata-url` (or `TAXI_METADATA_URL`), it gives the
connection of every command and the Airflow DAG.
"""
import dataclasses
import os
import re
import urllib.parse
from typing import List, Mapping, Optional

from ml_metadata.proto import metadata_store_pb2

METADATA_FILE = "metadata.db"
PIPELINE_ROOT_FOLDER = "pipeline_root"
SERVING_MODEL_FOLDER = "serving_model"
REPORTS_FOLDER = "reports"


@dataclasses.dataclass(frozen=True)
class OutputLayout:
    """Where a run's metadata, artifacts, served versions and reports live under its output dir."""

    output_dir: str

    @property
    def metadata_path(self) -> str:
        return os.path.join(self.output_dir, METADATA_FILE)

    @property
    def pipeline_root(self) -> str:
        return os.path.join(self.output_dir, PIPELINE_ROOT_FOLDER)

    @property
    def serving_model_dir(self) -> str:
        return os.path.join(self.output_dir, SERVING_MODEL_FOLDER)

    @property
    def reports_dir(self) -> str:
        return os.path.join(self.output_dir, REPORTS_FOLDER)


# How a connection opens the SQLite file: a run creates it; tools that record write to an
# existing file; readers only read.
CREATE = metadata_store_pb2.SqliteMetadataSourceConfig.READWRITE_OPENCREATE
WRITE = metadata_store_pb2.SqliteMetadataSourceConfig.READWRITE
READ = metadata_store_pb2.SqliteMetadataSourceConfig.READONLY


def sqlite_connection_config(metadata_path: str, mode: int = CREATE) -> metadata_store_pb2.ConnectionConfig:
    """The ML Metadata connection of a SQLite file, opened with `mode` (CREATE, WRITE or READ).
    With CREATE the file's folder is made now, as a run's first writer needs it."""
    if mode == CREATE:
        os.makedirs(os.path.dirname(os.path.abspath(metadata_path)), exist_ok=True)
    config = metadata_store_pb2.ConnectionConfig()
    config.sqlite.filename_uri = metadata_path
    config.sqlite.connection_mode = mode
    return config


# The metadata setting: a flag on every command, an environment variable for the Airflow DAG
# (and the default of the flag), and the password only ever from the environment.
METADATA_URL_FLAG = "--metadata-url"
METADATA_URL_ENV = "TAXI_METADATA_URL"
METADATA_PASSWORD_ENV = "TAXI_METADATA_PASSWORD"
MYSQL_SCHEMES = ("mysql", "mariadb")
DEFAULT_MYSQL_PORT = 3306
SQLITE_LOCATION = f"sqlite: OUTPUT_DIR/{METADATA_FILE}"
# MySQL's unquoted identifiers; ML Metadata creates the database by this name.
_DATABASE_NAME = re.compile(r"^[A-Za-z0-9_$]{1,64}$")


class MetadataSettingError(ValueError):
    """The metadata setting is malformed, or the metadata it names cannot be used."""


@dataclasses.dataclass(frozen=True)
class MySQLDatabase:
    """A MySQL/MariaDB database that holds ML Metadata."""

    user: str
    host: str
    port: int
    database: str

    @property
    def url(self) -> str:
        """The setting as written, without any password."""
        return f"mysql://{self.user}@{self.host}:{self.port}/{self.database}"


@dataclasses.dataclass(frozen=True)
class MetadataSetting:
    """Where ML Metadata lives: the SQLite file under the output dir (`mysql` None, the
    default, nothing to set up) or a MySQL/MariaDB database shared by a team.

    `source` names where the setting came from (the flag or the environment variable), so
    an error names what to change.
    """

    mysql: Optional[MySQLDatabase] = None
    source: str = METADATA_URL_FLAG

    @property
    def location(self) -> str:
        """The metadata's place, the same from any machine and output path (no password)."""
        return SQLITE_LOCATION if self.mysql is None else self.mysql.url

    def describe(self, output_dir: str) -> str:
        """Where the metadata is, in words (never with a password)."""
        if self.mysql is None:
            return f"SQLite file {OutputLayout(output_dir).metadata_path}"
        return f"MySQL database {self.mysql.url}"

    def connection_config(
        self, output_dir: str, mode: int = CREATE, environ: Mapping[str, str] = os.environ
    ) -> metadata_store_pb2.ConnectionConfig:
        """The ML Metadata connection for a run or tool writing to `output_dir`.

        `mode` is CREATE (a run: the SQLite file, or the MySQL database, is made if absent),
        WRITE or READ (a tool: what does not exist is an error, nothing is created). MySQL has
        no read-only connection; READ there only means "never create the database".
        """
        if self.mysql is None:
            return sqlite_connection_config(OutputLayout(output_dir).metadata_path, mode)
        config = metadata_store_pb2.ConnectionConfig()
        config.mysql.host = self.mysql.host
        config.mysql.port = self.mysql.port
        config.mysql.database = self.mysql.database
        config.mysql.user = self.mysql.user
        password = environ.get(METADATA_PASSWORD_ENV)
        if password:
            config.mysql.password = password
        config.mysql.skip_db_creation = mode != CREATE
        return config


def parse_metadata_url(url: Optional[str], source: str = METADATA_URL_FLAG) -> MetadataSetting:
    """Parses the metadata setting: empty or None is the SQLite default; otherwise
    `mysql://USER@HOST[:PORT]/DATABASE` (`mariadb://` too), the password, if any, in the
    TAXI_METADATA_PASSWORD environment variable.

    Raises:
        MetadataSettingError: naming `source` and what is wrong; a password written into the
            URL is refused and never repeated.
    """
    if url is None or not url.strip():
        return MetadataSetting(None, source)
    url = url.strip()
    try:
        parts = urllib.parse.urlsplit(url)
        port = parts.port
    except ValueError as error:
        raise MetadataSettingError(f"{source}: not a mysql://USER@HOST:PORT/DATABASE URL ({error})") from None
    if parts.password is not None:
        raise MetadataSettingError(
            f"{source}: the URL carries a password; remove it from the URL and set {METADATA_PASSWORD_ENV} instead"
        )
    shown = f"mysql://{parts.username or ''}@{parts.hostname or ''}{parts.path}" if parts.scheme in MYSQL_SCHEMES else url
    if parts.scheme not in MYSQL_SCHEMES:
        raise MetadataSettingError(
            f"{source} {url!r}: the scheme must be mysql:// (MySQL or MariaDB); leave the setting out for the SQLite file under the output dir"
        )
    if not parts.username:
        raise MetadataSettingError(f"{source} {shown!r}: no user (mysql://USER@HOST:PORT/DATABASE)")
    if not parts.hostname:
        raise MetadataSettingError(f"{source} {shown!r}: no host (mysql://USER@HOST:PORT/DATABASE)")
    database = parts.path.lstrip("/")
    if not _DATABASE_NAME.match(database):
        raise MetadataSettingError(
            f"{source} {shown!r}: the database name {database!r} must be 1-64 letters, digits, '_' or '$' (mysql://USER@HOST:PORT/DATABASE)"
        )
    if parts.query or parts.fragment:
        raise MetadataSettingError(f"{source} {shown!r}: options after '?' or '#' are not supported")
    user = urllib.parse.unquote(parts.username)
    return MetadataSetting(MySQLDatabase(user, parts.hostname, port or DEFAULT_MYSQL_PORT, database), source)


def setting_from(flag_value: Optional[str], environ: Mapping[str, str] = os.environ) -> MetadataSetting:
    """The metadata setting of a command: its `--metadata-url` when given, else
    TAXI_METADATA_URL, else the SQLite default.

    Raises:
        MetadataSettingError: when the setting in use is malformed.
    """
    if flag_value is not None:
        return parse_metadata_url(flag_value, METADATA_URL_FLAG)
    return parse_metadata_url(environ.get(METADATA_URL_ENV), METADATA_URL_ENV)


def add_metadata_flag(parser) -> None:
    """Adds `--metadata-url` to a command's argparse parser."""
    parser.add_argument(
        METADATA_URL_FLAG,
        default=None,
        metavar="mysql://USER@HOST:PORT/DATABASE",
        help=f"keep ML Metadata in this MySQL/MariaDB database (password from {METADATA_PASSWORD_ENV}) "
        f"instead of OUTPUT_DIR/{METADATA_FILE} [{METADATA_URL_ENV}]",
    )


def problem(setting: MetadataSetting, output_dir: str, must_exist: bool = False) -> str:
    """Why the metadata the setting names cannot be used, or "" when it can. Checked before
    any component runs. No file or database is created here (ML Metadata does lay out its
    tables in an existing, empty MySQL database, as any first connection does).

    SQLite: an existing file must open and pass SQLite's quick_check. MySQL: the server must
    answer, the user log in, and the database exist or be creatable.
    `must_exist`: a tool that reads or records needs the metadata to exist already.
    """
    if setting.mysql is None:
        return _sqlite_problem(OutputLayout(output_dir).metadata_path, must_exist)
    return _mysql_problem(setting, must_exist)


# MySQL's error numbers for "access denied" and "unknown database". ML Metadata's own client
# reports a failed log-in with an empty message, so the check asks the server with PyMySQL first.
_ACCESS_DENIED = 1045
_UNKNOWN_DATABASE = 1049
CONNECT_TIMEOUT_SECONDS = 10


def _mysql_problem(setting: MetadataSetting, must_exist: bool, environ: Mapping[str, str] = os.environ) -> str:
    """Why the MySQL database cannot hold ML Metadata: the log-in, then ML Metadata itself."""
    login = _mysql_login_problem(setting, must_exist, environ)
    if login is None:
        return ""  # no database yet: the run creates it, as it creates the SQLite file
    if login:
        return login
    from ml_metadata import metadata_store

    try:
        metadata_store.MetadataStore(setting.connection_config("", WRITE, environ)).get_context_types()
    except Exception as error:  # noqa: BLE001 - ML Metadata raises RuntimeError or its own errors
        return f"{setting.source} {setting.mysql.url}: the server answers, but ML Metadata does not open there: {str(error).strip() or type(error).__name__}"
    return ""


def _mysql_login_problem(setting: MetadataSetting, must_exist: bool, environ: Mapping[str, str] = os.environ) -> Optional[str]:
    """Why the server does not let the user into the database (PyMySQL's reason); "" when it
    does; None when the database does not exist and `must_exist` is False."""
    import pymysql

    database = setting.mysql
    where = f"{setting.source} {database.url}"
    try:
        connection = pymysql.connect(
            host=database.host,
            port=database.port,
            user=database.user,
            password=environ.get(METADATA_PASSWORD_ENV) or "",
            database=database.database,
            connect_timeout=CONNECT_TIMEOUT_SECONDS,
        )
    except pymysql.err.MySQLError as error:
        code = error.args[0] if error.args else None
        if code == _UNKNOWN_DATABASE and not must_exist:
            return None
        reason = error.args[1] if len(error.args) > 1 else str(error)
        password_note = f" (the password comes from {METADATA_PASSWORD_ENV})" if code == _ACCESS_DENIED else ""
        return f"{where}: cannot open ML Metadata there: {reason}{password_note}"
    connection.close()
    return ""


def _sqlite_problem(metadata_path: str, must_exist: bool) -> str:
    """Why an ML Metadata SQLite file cannot be used (not SQLite, truncated, unreadable), or
    "" when it opens, or does not exist yet and need not. Read only."""
    if not os.path.lexists(metadata_path):
        return f"no ML Metadata file at {metadata_path}: has the pipeline run with this --output-dir?" if must_exist else ""
    import sqlite3

    try:
        with sqlite3.connect(f"file:{metadata_path}?mode=ro", uri=True) as connection:
            result = connection.execute("PRAGMA quick_check").fetchone()
    except sqlite3.Error as error:
        return f"{metadata_path} is not a usable ML Metadata (SQLite) file: {error}; move it away to start a new history"
    if not result or result[0] != "ok":
        return f"{metadata_path} is damaged (SQLite quick_check: {result[0] if result else 'no answer'}); move it away to start a new history"
    return ""


def open_store(setting: MetadataSetting, output_dir: str, mode: int = READ):
    """An ML Metadata store that must already exist (tools that read or record).

    Raises:
        MetadataSettingError: naming the file or database when it does not exist or does not open.
    """
    from ml_metadata import metadata_store

    if setting.mysql is None:
        metadata_path = OutputLayout(output_dir).metadata_path
        missing = "" if os.path.isfile(metadata_path) else _sqlite_problem(metadata_path, must_exist=True)
    else:
        # Only the log-in: the store opened below is ML Metadata's own check.
        missing = _mysql_login_problem(setting, must_exist=True)
    if missing:
        raise MetadataSettingError(missing)
    try:
        return metadata_store.MetadataStore(setting.connection_config(output_dir, mode))
    except Exception as error:  # noqa: BLE001 - ML Metadata raises RuntimeError or its own errors
        raise MetadataSettingError(f"cannot open ML Metadata ({setting.describe(output_dir)}): {str(error).strip()}") from None


# Set on an execution `abandon_unfinished` marked failed.
ABANDONED_PROPERTY = "abandoned"


def abandon_unfinished(config: metadata_store_pb2.ConnectionConfig) -> List[int]:
    """Marks FAILED every execution still NEW or RUNNING: the work of a run that was killed
    (kill -9, a lost machine) before it could record an outcome. Call it before a run, when no
    other run writes to the same metadata.

    Returns:
        The ids of the executions marked, ascending; [] when the file does not exist yet.
    """
    if config.HasField("sqlite") and not os.path.isfile(config.sqlite.filename_uri):
        return []
    from ml_metadata import metadata_store

    store = metadata_store.MetadataStore(config)
    # Asked of the database, so the cost does not grow with the history of finished runs.
    unfinished = store.get_executions(
        list_options=metadata_store.ListOptions(filter_query="last_known_state = NEW OR last_known_state = RUNNING")
    )
    for execution in unfinished:
        execution.last_known_state = metadata_store_pb2.Execution.FAILED
        execution.custom_properties[ABANDONED_PROPERTY].string_value = "left unfinished by an interrupted run; marked failed by the next run"
    if unfinished:
        store.put_executions(unfinished)
    return sorted(execution.id for execution in unfinished)
