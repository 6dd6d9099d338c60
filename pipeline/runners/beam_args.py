"""The one place that turns a choice of Beam runner into Beam pipeline arguments.

Every entry point (run_local.py, the Airflow DAG, the Vertex AI runner, the benchmarks) says
*where* the Beam-powered components (ExampleGen, StatisticsGen, Transform, Evaluator) run by
building one of the typed configurations below and calling `beam_args_for(...)`:

    beam_args_for(DirectRunnerConfig(mode="multi_processing", num_workers=2))
    -> ["--runner=DirectRunner", "--direct_running_mode=multi_processing", "--direct_num_workers=2"]

Remote workers (Dataflow, Flink, Spark) must be able to import `modules` and `pipeline`, so
each remote configuration names how the project's code reaches them: a `setup.py` that Beam
packages and installs, or a container image that already holds the code (the project's
`Dockerfile`).
"""
import dataclasses
import os
import re
from typing import List, Optional, Tuple, Union

DIRECT_MODES: Tuple[str, ...] = ("in_memory", "multi_threading", "multi_processing")
PORTABLE_RUNNERS: Tuple[str, ...] = ("FlinkRunner", "SparkRunner")
# How a portable runner starts the Python SDK harness that runs our code.
ENVIRONMENT_TYPES: Tuple[str, ...] = ("DOCKER", "PROCESS", "EXTERNAL", "LOOPBACK")

# The repository's setup.py, as this process sees it.
PROJECT_SETUP_FILE = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "setup.py")

_JOB_ENDPOINT = re.compile(r"^[A-Za-z0-9_.\-\[\]:]+:\d{1,5}$")
_GCP_REGION = re.compile(r"^[a-z]+-[a-z]+\d+$")


class RunnerConfigError(ValueError):
    """A runner configuration is incomplete or inconsistent; the message names the field."""


@dataclasses.dataclass(frozen=True)
class DirectRunnerConfig:
    """Beam's DirectRunner on this machine.

    Attributes:
        mode: "in_memory" (one process, the default), "multi_threading" or
            "multi_processing" (one worker process per core; bundles are split between them).
        num_workers: Workers for the multi_* modes; None means one per core of this machine.
        setup_file: The project's setup.py (`PROJECT_SETUP_FILE`) for the runs of TFX's Beam
            components. The DirectRunner's workers run in this Python environment and never
            read it. Without such a flag, each of TFX's Beam components packages TFX itself
            for the workers (`tfx.utils.dependency_utils.build_ephemeral_package`): it copies
            the installed TFX (48 MB) to a new folder under /tmp that it never removes, runs
            `setup.py sdist` there (1.2-1.9 s) and changes the process's working directory
            meanwhile, which breaks another step running at the same time.
    """

    mode: str = "in_memory"
    num_workers: Optional[int] = None
    setup_file: Optional[str] = None


@dataclasses.dataclass(frozen=True)
class DataflowRunnerConfig:
    """Google Cloud Dataflow.

    Attributes:
        project: Google Cloud project that runs and pays for the Dataflow jobs.
        region: Dataflow regional endpoint, e.g. "us-central1".
        temp_location: gs:// folder for Beam's temporary files.
        staging_location: gs:// folder for staged packages (default: temp_location).
        machine_type: Worker machine type, e.g. "n1-standard-4" (default: Dataflow's choice).
        max_num_workers: Ceiling for autoscaling (default: Dataflow's).
        setup_file: Path of the project's setup.py as the *launching* process sees it;
            Beam builds the package and installs it on every worker.
        sdk_container_image: A worker image that already holds the project's code (e.g. the
            image built from the project's Dockerfile). Give this or setup_file, not both.
        service_account_email: Worker service account (default: the project's Compute one).
        use_runner_v2: Run on Dataflow Runner v2, required for custom SDK containers.
        extra_args: Further Beam flags, passed through as written ("--flag=value").
    """

    project: str
    region: str
    temp_location: str
    staging_location: Optional[str] = None
    machine_type: Optional[str] = None
    max_num_workers: Optional[int] = None
    setup_file: Optional[str] = None
    sdk_container_image: Optional[str] = None
    service_account_email: Optional[str] = None
    use_runner_v2: bool = True
    extra_args: Tuple[str, ...] = ()


@dataclasses.dataclass(frozen=True)
class PortableRunnerConfig:
    """Apache Flink or Apache Spark through a Beam portable job server.

    Attributes:
        runner: "FlinkRunner" or "SparkRunner".
        job_endpoint: host:port of the running Beam job server (e.g. "localhost:8099" for
            `docker run --net=host apache/beam_flink1.18_job_server`).
        environment_type: How the cluster starts the Python SDK harness: "DOCKER" (an image,
            given as environment_config), "PROCESS" (a boot command, given as
            environment_config), "EXTERNAL" (a worker pool at environment_config, host:port)
            or "LOOPBACK" (this process; for a job server on this machine only).
        environment_config: The image, command or address that environment_type needs.
        parallelism: Default parallelism of the job (default: the cluster's).
        extra_args: Further Beam flags, passed through as written ("--flag=value").
    """

    runner: str
    job_endpoint: str
    environment_type: str = "DOCKER"
    environment_config: Optional[str] = None
    parallelism: Optional[int] = None
    extra_args: Tuple[str, ...] = ()


RunnerConfig = Union[DirectRunnerConfig, DataflowRunnerConfig, PortableRunnerConfig]


def beam_args_for(config: RunnerConfig) -> List[str]:
    """Returns the Beam pipeline arguments that run the Beam-powered components on `config`.

    Args:
        config: Which runner, and its settings.

    Returns:
        Arguments for `create_pipeline(..., beam_pipeline_args=...)`, "--runner=..." first.

    Raises:
        RunnerConfigError: when a required field is missing or a value is malformed; the
            message names the field.
    """
    if isinstance(config, DirectRunnerConfig):
        return _direct_args(config)
    if isinstance(config, DataflowRunnerConfig):
        return _dataflow_args(config)
    if isinstance(config, PortableRunnerConfig):
        return _portable_args(config)
    raise RunnerConfigError(
        f"unknown runner configuration {type(config).__name__}; use DirectRunnerConfig, "
        "DataflowRunnerConfig or PortableRunnerConfig"
    )


def _direct_args(config: DirectRunnerConfig) -> List[str]:
    """Arguments for the DirectRunner."""
    if config.mode not in DIRECT_MODES:
        raise RunnerConfigError(f"DirectRunner mode {config.mode!r} is not one of {', '.join(DIRECT_MODES)}")
    args = ["--runner=DirectRunner", f"--direct_running_mode={config.mode}"]
    if config.setup_file:
        args.append(f"--setup_file={config.setup_file}")
    if config.mode == "in_memory":
        if config.num_workers is not None:
            raise RunnerConfigError(
                f"num_workers={config.num_workers} has no effect in DirectRunner mode 'in_memory'; "
                "use mode 'multi_processing' or 'multi_threading'"
            )
        return args
    if config.num_workers is not None and config.num_workers < 1:
        raise RunnerConfigError(f"num_workers must be at least 1, got {config.num_workers}")
    # An explicit count (not Beam's 0 = "all cores") so the run's log says how many ran.
    workers = config.num_workers if config.num_workers is not None else (os.cpu_count() or 1)
    return args + [f"--direct_num_workers={workers}"]


def _require_gcs(field: str, value: Optional[str]) -> None:
    if not value or not value.startswith("gs://") or len(value) <= len("gs://"):
        raise RunnerConfigError(f"Dataflow {field} must be a gs:// location, got {value!r}")


def _check_extra_args(runner: str, extra_args: Tuple[str, ...]) -> List[str]:
    for arg in extra_args:
        if not arg.startswith("--"):
            raise RunnerConfigError(f"{runner} extra argument {arg!r} must be a flag written --name=value")
        if arg.split("=", 1)[0] == "--runner":
            raise RunnerConfigError(f"{runner} extra argument {arg!r} would replace the runner; choose another config")
    return list(extra_args)


def _dataflow_args(config: DataflowRunnerConfig) -> List[str]:
    """Arguments for Google Cloud Dataflow."""
    if not config.project:
        raise RunnerConfigError("Dataflow needs a Google Cloud project (DataflowRunnerConfig.project is empty)")
    if not config.region or not _GCP_REGION.match(config.region):
        raise RunnerConfigError(f"Dataflow region must look like 'us-central1', got {config.region!r}")
    _require_gcs("temp_location", config.temp_location)
    if config.staging_location is not None:
        _require_gcs("staging_location", config.staging_location)
    if config.setup_file and config.sdk_container_image:
        raise RunnerConfigError(
            "give Dataflow either setup_file or sdk_container_image, not both: the image already "
            "holds the project's code"
        )
    if not config.setup_file and not config.sdk_container_image:
        raise RunnerConfigError(
            "Dataflow workers need the project's code: set setup_file (the repository's setup.py) "
            "or sdk_container_image (an image built from the project's Dockerfile)"
        )
    if config.setup_file and os.path.basename(config.setup_file) != "setup.py":
        raise RunnerConfigError(f"Dataflow setup_file must name a setup.py, got {config.setup_file!r}")
    if config.sdk_container_image and not config.use_runner_v2:
        raise RunnerConfigError("a Dataflow sdk_container_image needs use_runner_v2=True")
    if config.max_num_workers is not None and config.max_num_workers < 1:
        raise RunnerConfigError(f"Dataflow max_num_workers must be at least 1, got {config.max_num_workers}")
    args = [
        "--runner=DataflowRunner",
        f"--project={config.project}",
        f"--region={config.region}",
        f"--temp_location={config.temp_location}",
    ]
    if config.staging_location:
        args.append(f"--staging_location={config.staging_location}")
    if config.machine_type:
        args.append(f"--machine_type={config.machine_type}")
    if config.max_num_workers is not None:
        args.append(f"--max_num_workers={config.max_num_workers}")
    if config.setup_file:
        args.append(f"--setup_file={config.setup_file}")
    if config.sdk_container_image:
        args.append(f"--sdk_container_image={config.sdk_container_image}")
    if config.service_account_email:
        args.append(f"--service_account_email={config.service_account_email}")
    if config.use_runner_v2:
        args.append("--experiments=use_runner_v2")
    return args + _check_extra_args("Dataflow", config.extra_args)


def _portable_args(config: PortableRunnerConfig) -> List[str]:
    """Arguments for Flink or Spark through a portable job server."""
    if config.runner not in PORTABLE_RUNNERS:
        raise RunnerConfigError(f"portable runner {config.runner!r} is not one of {', '.join(PORTABLE_RUNNERS)}")
    if not config.job_endpoint or not _JOB_ENDPOINT.match(config.job_endpoint):
        raise RunnerConfigError(
            f"{config.runner} job_endpoint must be host:port of a Beam job server, got {config.job_endpoint!r}"
        )
    if config.environment_type not in ENVIRONMENT_TYPES:
        raise RunnerConfigError(
            f"{config.runner} environment_type {config.environment_type!r} is not one of {', '.join(ENVIRONMENT_TYPES)}"
        )
    if config.environment_type == "LOOPBACK":
        if config.environment_config:
            raise RunnerConfigError(f"{config.runner} environment_type LOOPBACK takes no environment_config")
    elif not config.environment_config:
        # Beam's default DOCKER image has no `modules` package, so every worker would fail to
        # import the preprocessing_fn; make the image (or command, or address) explicit.
        what = {"DOCKER": "an image with the project's code", "PROCESS": "a boot command", "EXTERNAL": "a worker pool host:port"}
        raise RunnerConfigError(
            f"{config.runner} environment_type {config.environment_type} needs environment_config: "
            f"{what[config.environment_type]}"
        )
    if config.parallelism is not None and config.parallelism < 1:
        raise RunnerConfigError(f"{config.runner} parallelism must be at least 1, got {config.parallelism}")
    args = [
        f"--runner={config.runner}",
        f"--job_endpoint={config.job_endpoint}",
        f"--environment_type={config.environment_type}",
    ]
    if config.environment_config:
        args.append(f"--environment_config={config.environment_config}")
    if config.parallelism is not None:
        args.append(f"--parallelism={config.parallelism}")
    return args + _check_extra_args(config.runner, config.extra_args)


def turn_off_in_process_state_cache() -> None:
    """Turns off the state cache of the DirectRunner's in-process worker, in this process.

    That cache weighs every side input it keeps with `objsize`, which first walks the globals of
    every loaded module, thousands with TensorFlow loaded; Transform and the Evaluators read
    many side inputs, and the weighing took about 10 s of a run on the shipped data and on
    200,000 trips alike (py-spy). The in-process worker reads its cache size from a module
    constant, not from the pipeline's options. Without the cache, a side input is read again from
    the runner's in-memory state, which Beam's own runner tests do too; results do not change.
    Worker processes (multi_processing, Dataflow, Flink, Spark) keep their own setting.
    """
    from apache_beam.runners.portability.fn_api_runner import worker_handlers

    worker_handlers.STATE_CACHE_SIZE_MB = 0


def quiet_pickler_logging() -> None:
    """Makes Beam's pickler set dill's logging level only when it changes, in this process.

    After every pickle and unpickle, Beam's dill pickler sets dill's logger back to WARN
    (`dill._dill._trace(False)`), and `Logger.setLevel` clears the level cache of every logger
    the process has: over a thousand with TensorFlow, TFX and TFMA loaded, about 77 µs a call
    on this project's machines. Building and running a Beam step pickles thousands of times
    (Transform's stages, every DoFn and coder), behind Beam's one pickling lock. Setting a level
    the logger already has changes nothing, so it is skipped; a change (Beam turns tracing on
    to pickle again after a failure) still goes through dill's own function.
    """
    import logging

    from dill import _dill

    if getattr(_dill._trace, "skips_unchanged_level", False):
        return
    dill_trace = _dill._trace

    def trace(boolean: bool) -> None:
        if _dill.log.level != (logging.INFO if boolean else logging.WARN):
            dill_trace(boolean)

    trace.skips_unchanged_level = True
    trace.dill_trace = dill_trace
    _dill._trace = trace
