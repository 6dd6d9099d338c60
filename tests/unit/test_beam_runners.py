"""pipeline.runners.beam_args: the arguments each runner gets, and every refused configuration."""
import dataclasses
import os

import pytest
from apache_beam.options.pipeline_options import PipelineOptions

from pipeline.runners.beam_args import PROJECT_SETUP_FILE, DataflowRunnerConfig, DirectRunnerConfig, PortableRunnerConfig, RunnerConfigError, beam_args_for

DATAFLOW = DataflowRunnerConfig(
    project="my-project",
    region="us-central1",
    temp_location="gs://my-bucket/tmp",
    setup_file="/pipeline/setup.py",
)
FLINK = PortableRunnerConfig(
    runner="FlinkRunner", job_endpoint="localhost:8099", environment_config="europe-docker.pkg.dev/p/r/taxi:1"
)


def _parsed(args):
    """What Beam itself reads from the arguments (unknown flags would be dropped)."""
    return PipelineOptions(args).get_all_options(drop_default=True)


def test_direct_in_memory_is_the_default():
    assert beam_args_for(DirectRunnerConfig()) == ["--runner=DirectRunner", "--direct_running_mode=in_memory"]


def test_direct_multi_processing_uses_the_given_workers():
    args = beam_args_for(DirectRunnerConfig(mode="multi_processing", num_workers=2))
    assert args == ["--runner=DirectRunner", "--direct_running_mode=multi_processing", "--direct_num_workers=2"]
    assert _parsed(args)["direct_num_workers"] == 2


def test_direct_setup_file_is_passed_to_beam():
    args = beam_args_for(DirectRunnerConfig(setup_file=PROJECT_SETUP_FILE))
    assert args == ["--runner=DirectRunner", "--direct_running_mode=in_memory", f"--setup_file={PROJECT_SETUP_FILE}"]
    assert _parsed(args)["setup_file"] == PROJECT_SETUP_FILE
    assert os.path.isfile(PROJECT_SETUP_FILE)


def test_direct_multi_processing_defaults_to_one_worker_per_core(monkeypatch):
    monkeypatch.setattr("os.cpu_count", lambda: 6)
    assert beam_args_for(DirectRunnerConfig(mode="multi_processing"))[-1] == "--direct_num_workers=6"


@pytest.mark.parametrize(
    "config, message",
    [
        (DirectRunnerConfig(mode="fast"), "DirectRunner mode 'fast' is not one of in_memory, multi_threading, multi_processing"),
        (DirectRunnerConfig(num_workers=2), "num_workers=2 has no effect in DirectRunner mode 'in_memory'"),
        (DirectRunnerConfig(mode="multi_processing", num_workers=0), "num_workers must be at least 1, got 0"),
    ],
)
def test_bad_direct_configs_are_refused(config, message):
    with pytest.raises(RunnerConfigError, match=message.replace("(", r"\(")):
        beam_args_for(config)


def test_dataflow_args_carry_project_code_and_runner_v2():
    args = beam_args_for(dataclasses.replace(DATAFLOW, machine_type="n1-standard-4", max_num_workers=10))
    assert args[0] == "--runner=DataflowRunner"
    parsed = _parsed(args)
    assert parsed["project"] == "my-project"
    assert parsed["region"] == "us-central1"
    assert parsed["temp_location"] == "gs://my-bucket/tmp"
    assert parsed["setup_file"] == "/pipeline/setup.py"
    assert parsed["machine_type"] == "n1-standard-4"
    assert parsed["max_num_workers"] == 10
    assert parsed["experiments"] == ["use_runner_v2"]


def test_dataflow_with_the_project_image_instead_of_setup_py():
    args = beam_args_for(dataclasses.replace(DATAFLOW, setup_file=None, sdk_container_image="gcr.io/p/taxi:1"))
    assert "--sdk_container_image=gcr.io/p/taxi:1" in args
    assert not any(arg.startswith("--setup_file") for arg in args)


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"project": ""}, "Dataflow needs a Google Cloud project"),
        ({"region": ""}, "Dataflow region must look like 'us-central1', got ''"),
        ({"region": "US Central"}, "Dataflow region must look like 'us-central1', got 'US Central'"),
        ({"temp_location": "/tmp/beam"}, "Dataflow temp_location must be a gs:// location, got '/tmp/beam'"),
        ({"staging_location": "s3://b/x"}, "Dataflow staging_location must be a gs:// location, got 's3://b/x'"),
        ({"setup_file": None}, "Dataflow workers need the project's code"),
        ({"sdk_container_image": "gcr.io/p/taxi:1"}, "either setup_file or sdk_container_image, not both"),
        ({"setup_file": "/pipeline/requirements.txt"}, "setup_file must name a setup.py"),
        ({"setup_file": None, "sdk_container_image": "i:1", "use_runner_v2": False}, "needs use_runner_v2=True"),
        ({"max_num_workers": 0}, "max_num_workers must be at least 1, got 0"),
        ({"extra_args": ("network=default",)}, "extra argument 'network=default' must be a flag"),
        ({"extra_args": ("--runner=DirectRunner",)}, "would replace the runner"),
    ],
)
def test_bad_dataflow_configs_are_refused(overrides, message):
    with pytest.raises(RunnerConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        beam_args_for(dataclasses.replace(DATAFLOW, **overrides))


def test_flink_and_spark_go_through_the_job_server():
    args = beam_args_for(dataclasses.replace(FLINK, parallelism=4))
    assert args == [
        "--runner=FlinkRunner",
        "--job_endpoint=localhost:8099",
        "--environment_type=DOCKER",
        "--environment_config=europe-docker.pkg.dev/p/r/taxi:1",
        "--parallelism=4",
    ]
    parsed = _parsed(args)
    assert parsed["job_endpoint"] == "localhost:8099"
    assert parsed["environment_type"] == "DOCKER"
    spark = beam_args_for(PortableRunnerConfig(runner="SparkRunner", job_endpoint="spark-js:8099", environment_type="LOOPBACK"))
    assert spark == ["--runner=SparkRunner", "--job_endpoint=spark-js:8099", "--environment_type=LOOPBACK"]


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"runner": "PortableRunner"}, "portable runner 'PortableRunner' is not one of FlinkRunner, SparkRunner"),
        ({"job_endpoint": "localhost"}, "job_endpoint must be host:port of a Beam job server, got 'localhost'"),
        ({"environment_type": "K8S"}, "environment_type 'K8S' is not one of DOCKER, PROCESS, EXTERNAL, LOOPBACK"),
        ({"environment_config": None}, "environment_type DOCKER needs environment_config: an image"),
        ({"environment_type": "EXTERNAL", "environment_config": None}, "needs environment_config: a worker pool"),
        ({"environment_type": "LOOPBACK"}, "LOOPBACK takes no environment_config"),
        ({"parallelism": 0}, "parallelism must be at least 1, got 0"),
    ],
)
def test_bad_portable_configs_are_refused(overrides, message):
    with pytest.raises(RunnerConfigError, match=message):
        beam_args_for(dataclasses.replace(FLINK, **overrides))


def test_an_unknown_config_type_is_refused():
    with pytest.raises(RunnerConfigError, match="unknown runner configuration dict"):
        beam_args_for({"runner": "DirectRunner"})
