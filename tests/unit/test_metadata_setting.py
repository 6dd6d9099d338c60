"""The metadata setting (`--metadata-url`, TAXI_METADATA_URL) and the output dir's writer lock.

Parsing and refusals need no server; the lock is taken by real processes.
"""
import os
import signal
import subprocess
import sys

import pytest

from pipeline.ops import metadata, writer_lock
from pipeline.ops.metadata import MetadataSettingError, parse_metadata_url, setting_from

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.mark.parametrize(
    "url, expected",
    [
        ("mysql://taxi@db.internal:3307/taxi_metadata", ("taxi", "db.internal", 3307, "taxi_metadata")),
        ("mysql://root@127.0.0.1/test", ("root", "127.0.0.1", 3306, "test")),
        ("mariadb://ml%2Bops@10.0.0.5:3306/mlmd_prod", ("ml+ops", "10.0.0.5", 3306, "mlmd_prod")),
    ],
)
def test_a_mysql_url_names_user_host_port_and_database(url, expected):
    database = parse_metadata_url(url).mysql
    assert (database.user, database.host, database.port, database.database) == expected


@pytest.mark.parametrize("url", [None, "", "   "])
def test_no_setting_is_the_sqlite_file_under_the_output_dir(url):
    setting = parse_metadata_url(url)
    assert setting.mysql is None
    assert setting.describe("/srv/taxi") == "SQLite file /srv/taxi/metadata.db"
    config = setting.connection_config("/srv/taxi", metadata.READ)
    assert config.sqlite.filename_uri == "/srv/taxi/metadata.db"


@pytest.mark.parametrize(
    "url, words",
    [
        ("postgresql://root@127.0.0.1/test", "the scheme must be mysql://"),
        ("mysql://@127.0.0.1:3306/test", "no user"),
        ("mysql://root@:3306/test", "no host"),
        ("mysql://root@127.0.0.1:3306/", "the database name ''"),
        ("mysql://root@127.0.0.1:3306/taxi-metadata", "the database name 'taxi-metadata'"),
        ("mysql://root@127.0.0.1:3306/test?ssl=1", "options after '?'"),
        ("mysql://root@127.0.0.1:70000/test", "Port out of range"),
    ],
)
def test_a_malformed_url_is_refused_naming_the_setting_and_the_fault(url, words):
    with pytest.raises(MetadataSettingError) as refused:
        parse_metadata_url(url, "TAXI_METADATA_URL")
    assert str(refused.value).startswith("TAXI_METADATA_URL")
    assert words in str(refused.value)


def test_a_password_in_the_url_is_refused_and_never_repeated():
    with pytest.raises(MetadataSettingError) as refused:
        parse_metadata_url("mysql://taxi:s3cr3t-pw@db.internal:3306/taxi_metadata")
    assert "s3cr3t-pw" not in str(refused.value)
    assert metadata.METADATA_PASSWORD_ENV in str(refused.value)


def test_the_password_comes_from_the_environment_and_is_never_described():
    setting = parse_metadata_url("mysql://taxi@db.internal:3306/taxi_metadata")
    config = setting.connection_config("/srv/taxi", metadata.CREATE, {metadata.METADATA_PASSWORD_ENV: "s3cr3t-pw"})
    assert (config.mysql.host, config.mysql.port, config.mysql.user, config.mysql.password) == ("db.internal", 3306, "taxi", "s3cr3t-pw")
    assert "s3cr3t-pw" not in setting.describe("/srv/taxi") + setting.location + repr(setting)


def test_only_a_run_may_create_the_database():
    setting = parse_metadata_url("mysql://taxi@db.internal:3306/taxi_metadata")
    assert setting.connection_config("/o", metadata.CREATE).mysql.skip_db_creation is False
    assert setting.connection_config("/o", metadata.WRITE).mysql.skip_db_creation is True
    assert setting.connection_config("/o", metadata.READ).mysql.skip_db_creation is True


def test_the_flag_wins_over_the_environment_and_errors_name_their_source():
    environ = {metadata.METADATA_URL_ENV: "mysql://env@db:3306/from_env"}
    assert setting_from("mysql://flag@db:3306/from_flag", environ).mysql.user == "flag"
    assert setting_from(None, environ).mysql.user == "env"
    assert setting_from(None, {}).mysql is None
    with pytest.raises(MetadataSettingError, match="^TAXI_METADATA_URL 'sqlite:///x.db'"):
        setting_from(None, {metadata.METADATA_URL_ENV: "sqlite:///x.db"})


def test_an_output_dir_keeps_the_metadata_it_started_with(tmp_path):
    sqlite, mysql = parse_metadata_url(None), parse_metadata_url("mysql://taxi@db:3306/taxi_metadata")
    writer_lock.check_location(str(tmp_path), mysql.location, record=True)
    writer_lock.check_location(str(tmp_path), mysql.location, record=False)
    with pytest.raises(writer_lock.MetadataLocationError) as refused:
        writer_lock.check_location(str(tmp_path), sqlite.location, record=True)
    assert "keeps its ML Metadata in mysql://taxi@db:3306/taxi_metadata, not in sqlite" in str(refused.value)


def test_an_output_dir_from_before_the_record_is_taken_as_sqlite(tmp_path):
    (tmp_path / "metadata.db").write_bytes(b"")
    with pytest.raises(writer_lock.MetadataLocationError, match="keeps its ML Metadata in sqlite"):
        writer_lock.check_location(str(tmp_path), parse_metadata_url("mysql://taxi@db:3306/m").location, record=True)


HOLD_LOCK = """
import sys, time
from pipeline.ops import writer_lock
with writer_lock.hold(sys.argv[1], ["holder-for-the-test"]):
    print("held", flush=True)
    time.sleep(120)
"""


def _holder(output_dir):
    process = subprocess.Popen([sys.executable, "-c", HOLD_LOCK, str(output_dir)], stdout=subprocess.PIPE, text=True, cwd=REPO_ROOT)
    assert process.stdout.readline().strip() == "held"
    return process


def test_a_second_writer_is_refused_naming_the_holder_until_the_holder_dies(tmp_path):
    holder = _holder(tmp_path)
    try:
        with pytest.raises(writer_lock.OutputBusyError) as refused:
            with writer_lock.hold(str(tmp_path)):
                pass
        assert f"pid {holder.pid} (holder-for-the-test, since " in str(refused.value)
        assert "nothing was changed" in str(refused.value)
    finally:
        # kill -9: the kernel drops the lock, nothing is left stale.
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    with writer_lock.hold(str(tmp_path), ["second"]) as lock_path:
        assert "(second, since" in open(lock_path).read()


def test_run_local_is_refused_with_exit_75_while_another_process_writes(tmp_path, data_root):
    holder = _holder(tmp_path / "out")
    try:
        result = subprocess.run(
            [sys.executable, "run_local.py", "--data-root", str(data_root), "--output-dir", str(tmp_path / "out")],
            capture_output=True, text=True, cwd=REPO_ROOT, timeout=300,
        )
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    assert result.returncode == writer_lock.EXIT_BUSY, result.stderr[-2000:]
    assert f"is being written by pid {holder.pid} (holder-for-the-test" in result.stderr
    # Refused before any component ran: nothing under the output dir but the lock.
    assert sorted(os.listdir(tmp_path / "out")) == [writer_lock.LOCK_FILE]
