"""Compiles the taxi pipeline for Vertex AI Pipelines (Kubeflow Pipelines v2), and submits it.

Examples:
  python -m pipeline vertex --output taxi_pipeline.json \\
      --image us-central1-docker.pkg.dev/my-project/tfx/taxi:1 --project my-project \\
      --pipeline-root gs://my-bucket/taxi/pipeline_root --data-root gs://my-bucket/taxi/data \\
      --serving-model-dir gs://my-bucket/taxi/serving_model --spans 1-4
      Compile (offline) a pipeline spec whose Beam-powered steps run on Dataflow.
  TAXI_IMAGE=... TAXI_PROJECT=... TAXI_PIPELINE_ROOT=... TAXI_DATA_ROOT=... \\
  TAXI_SERVING_MODEL_DIR=... TAXI_SPANS=1-4 python -m pipeline vertex --output p.json --submit
      The same from environment variables, then submit it as a Vertex AI PipelineJob.
  python -m pipeline vertex ... --beam-runner direct
      Run Beam inside each step's container instead (small data, no Dataflow job).

Every step runs in the project's image (the repository's Dockerfile): it holds `modules`
and `pipeline`, and serves as Dataflow's worker image too. A bucket cannot be listed
offline, so the spans to train on are given (`--spans 1-4`), not discovered.
"""
import argparse
import dataclasses
import json
import os
import sys
from typing import TYPE_CHECKING, Dict, List, Mapping, Optional, Sequence, Tuple

from pipeline import configs

if TYPE_CHECKING:  # the runner stays light until it compiles
    from pipeline.validation.table_sources import ExternalTableSource

# Where the Dockerfile copies the repository inside the image. Components that read files
# of the repository at run time (ImportSchemaGen reads the curated schema) are pointed here.
CONTAINER_REPO_ROOT = "/pipeline"
CONTAINER_SCHEMA_PATH = f"{CONTAINER_REPO_ROOT}/pipeline/schema/schema.pbtxt"
DEFAULT_REGION = "us-central1"
# Vertex AI pipeline names match [a-z0-9][a-z0-9-]{0,127}: the pipeline name with dashes.
VERTEX_PIPELINE_NAME = configs.PIPELINE_NAME.replace("_", "-")

# Each flag's environment variable, read when the flag is not given.
FLAG_ENVIRONMENT: Dict[str, str] = {
    "image": "TAXI_IMAGE",
    "project": "TAXI_PROJECT",
    "region": "TAXI_REGION",
    "pipeline_root": "TAXI_PIPELINE_ROOT",
    "data_root": "TAXI_DATA_ROOT",
    "serving_model_dir": "TAXI_SERVING_MODEL_DIR",
    "spans": "TAXI_SPANS",
    "dataflow_temp_location": "TAXI_DATAFLOW_TEMP_LOCATION",
    "service_account": "TAXI_SERVICE_ACCOUNT",
}


class VertexConfigError(ValueError):
    """A flag or environment variable of the Vertex runner is missing or malformed."""


@dataclasses.dataclass(frozen=True)
class VertexSettings:
    """Everything the compiled pipeline and its submission depend on, parsed and checked."""

    image: str
    project: str
    region: str
    pipeline_root: str
    data_root: str
    serving_model_dir: str
    spans: List[int]
    beam_runner: str = "dataflow"
    dataflow_temp_location: Optional[str] = None
    dataflow_machine_type: Optional[str] = None
    dataflow_max_workers: Optional[int] = None
    service_account: Optional[str] = None
    train_steps: int = configs.PipelineOptions.train_steps
    eval_steps: int = configs.PipelineOptions.eval_steps


def parse_spans(text: str) -> List[int]:
    """Returns the spans of "FIRST-LAST" or "N", e.g. "1-4" -> [1, 2, 3, 4].

    Raises:
        VertexConfigError: when the text is not such a range.
    """
    parts = text.strip().split("-")
    try:
        numbers = [int(part) for part in parts]
    except ValueError:
        numbers = []
    if len(numbers) not in (1, 2) or min(numbers) < 0:
        raise VertexConfigError(f"spans must be FIRST-LAST or N (e.g. 1-4), got {text!r}")
    first, last = numbers[0], numbers[-1]
    if first > last:
        raise VertexConfigError(f"spans {text!r}: the first span is after the last")
    return list(range(first, last + 1))


def _gcs(name: str, value: Optional[str]) -> str:
    if not value or not value.startswith("gs://") or len(value.rstrip("/")) <= len("gs://"):
        flag = "--" + name.replace("_", "-")
        raise VertexConfigError(
            f"{flag} (or {FLAG_ENVIRONMENT.get(name, '')}) must be a gs:// location, got {value!r}"
        )
    return value.rstrip("/")


def settings_from_args(args: argparse.Namespace, environ: Mapping[str, str]) -> VertexSettings:
    """Builds the settings from parsed flags, falling back to `environ` for unset flags.

    Raises:
        VertexConfigError: naming the flag (and its variable) that is missing or malformed.
    """

    def value(name: str) -> Optional[str]:
        given = getattr(args, name)
        if given is None and name in FLAG_ENVIRONMENT:
            given = environ.get(FLAG_ENVIRONMENT[name]) or None
        return given

    def required(name: str) -> str:
        given = value(name)
        if not given:
            flag = "--" + name.replace("_", "-")
            raise VertexConfigError(f"{flag} (or {FLAG_ENVIRONMENT[name]}) is required")
        return given

    image = required("image")
    if "/" not in image or any(char.isspace() for char in image):
        raise VertexConfigError(f"--image must be a registry image such as us-docker.pkg.dev/p/r/taxi:1, got {image!r}")
    pipeline_root = _gcs("pipeline_root", required("pipeline_root"))
    temp_location = value("dataflow_temp_location")
    if args.beam_runner == "dataflow":
        temp_location = _gcs("dataflow_temp_location", temp_location or f"{pipeline_root}/dataflow/tmp")
    for name in ("train_steps", "eval_steps"):
        if getattr(args, name) < 1:
            raise VertexConfigError(f"--{name.replace('_', '-')} must be at least 1, got {getattr(args, name)}")
    settings = VertexSettings(
        image=image,
        project=required("project"),
        region=value("region") or DEFAULT_REGION,
        pipeline_root=pipeline_root,
        data_root=_gcs("data_root", required("data_root")),
        serving_model_dir=_gcs("serving_model_dir", required("serving_model_dir")),
        spans=parse_spans(required("spans")),
        beam_runner=args.beam_runner,
        dataflow_temp_location=temp_location,
        dataflow_machine_type=args.dataflow_machine_type,
        dataflow_max_workers=args.dataflow_max_workers,
        service_account=value("service_account"),
        train_steps=args.train_steps,
        eval_steps=args.eval_steps,
    )
    from pipeline.runners.beam_args import RunnerConfigError

    try:
        beam_args(settings)
    except RunnerConfigError as error:
        raise VertexConfigError(str(error)) from error
    return settings


def beam_args(settings: VertexSettings) -> List[str]:
    """Returns the Beam arguments of the Beam-powered steps, from `pipeline.runners.beam_args`."""
    from pipeline.runners.beam_args import DataflowRunnerConfig, DirectRunnerConfig, beam_args_for

    if settings.beam_runner == "direct":
        return beam_args_for(DirectRunnerConfig())
    return beam_args_for(
        DataflowRunnerConfig(
            project=settings.project,
            region=settings.region,
            temp_location=settings.dataflow_temp_location,
            machine_type=settings.dataflow_machine_type,
            max_num_workers=settings.dataflow_max_workers,
            # The project image is a Beam SDK container too (see the Dockerfile), so the
            # workers run the same code and pinned libraries as the Vertex step.
            sdk_container_image=settings.image,
            service_account_email=settings.service_account,
        )
    )


def container_table_sources() -> Tuple["ExternalTableSource", ...]:
    """The shipped external tables at their paths inside the image, fingerprinted from this
    checkout (the image is built from it)."""
    from pipeline.spans import file_sha256
    from pipeline.validation.table_sources import shipped_table_path, table_source

    return tuple(
        table_source(
            name,
            f"{CONTAINER_REPO_ROOT}/data/{configs.EXTERNAL_TABLE_FILES[name]}",
            sha256=file_sha256(shipped_table_path(name)),
        )
        for name in sorted(configs.EXTERNAL_TABLE_FILES)
    )


def compile_pipeline(settings: VertexSettings, output_path: str, fingerprint: str = "", code_fingerprint: str = "") -> Dict:
    """Compiles the pipeline into a Vertex AI pipeline spec (JSON) at `output_path`.

    Args:
        settings: Image, locations, spans and Beam runner.
        output_path: The JSON file to write.
        fingerprint: Fingerprint of the `modules` code, recorded in the steps' configuration.
        code_fingerprint: Fingerprint of the project's code (`project_fingerprint`), likewise.

    Returns:
        The pipeline job as a dict (what was written).
    """
    from tfx.orchestration.kubeflow.v2 import kubeflow_v2_dag_runner

    from pipeline.dag import create_pipeline

    pipeline = create_pipeline(
        pipeline_name=VERTEX_PIPELINE_NAME,
        pipeline_root=settings.pipeline_root,
        data_root=settings.data_root,
        spans=settings.spans,
        serving_model_dir=settings.serving_model_dir,
        metadata_connection_config=None,  # Vertex AI keeps the metadata
        options=configs.PipelineOptions(
            train_steps=settings.train_steps,
            eval_steps=settings.eval_steps,
            module_fingerprint=fingerprint,
            code_fingerprint=code_fingerprint,
            # The steps run in the image, where the repository sits at CONTAINER_REPO_ROOT.
            schema_path=CONTAINER_SCHEMA_PATH,
            external_tables=container_table_sources(),
            # Vertex AI compiles TFX's built-in resolver strategies only (pipeline/configs.py).
            baseline=configs.BASELINE_LATEST_BLESSED,
        ),
        beam_pipeline_args=beam_args(settings),
    )
    runner = kubeflow_v2_dag_runner.KubeflowV2DagRunner(
        config=kubeflow_v2_dag_runner.KubeflowV2DagRunnerConfig(default_image=settings.image),
        output_dir=os.path.dirname(os.path.abspath(output_path)),
        output_filename=os.path.basename(output_path),
    )
    return runner.run(pipeline, write_out=True)


def submit(settings: VertexSettings, template_path: str) -> str:
    """Submits the compiled pipeline to Vertex AI Pipelines; returns the job's resource name."""
    from google.cloud import aiplatform

    aiplatform.init(project=settings.project, location=settings.region)
    job = aiplatform.PipelineJob(
        display_name=VERTEX_PIPELINE_NAME,
        template_path=template_path,
        pipeline_root=settings.pipeline_root,
        enable_caching=True,
    )
    job.submit(service_account=settings.service_account)
    return job.resource_name


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    """Parses the command line."""
    parser = argparse.ArgumentParser(
        prog="python -m pipeline vertex",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--output", required=True, help="the pipeline spec JSON file to write")
    parser.add_argument("--image", help="the project's image, built from the Dockerfile [TAXI_IMAGE]")
    parser.add_argument("--project", help="Google Cloud project for Vertex AI and Dataflow [TAXI_PROJECT]")
    parser.add_argument("--region", help=f"region of Vertex AI and Dataflow (default {DEFAULT_REGION}) [TAXI_REGION]")
    parser.add_argument("--pipeline-root", help="gs:// folder for artifacts [TAXI_PIPELINE_ROOT]")
    parser.add_argument("--data-root", help="gs:// folder of span-<N>/ CSV folders [TAXI_DATA_ROOT]")
    parser.add_argument("--serving-model-dir", help="gs:// folder Pusher writes versions to [TAXI_SERVING_MODEL_DIR]")
    parser.add_argument("--spans", help="spans to train on, FIRST-LAST or N, e.g. 1-4 [TAXI_SPANS]")
    parser.add_argument(
        "--beam-runner",
        choices=["dataflow", "direct"],
        default="dataflow",
        help="where ExampleGen, StatisticsGen, Transform and Evaluator run Beam (default: dataflow)",
    )
    parser.add_argument(
        "--dataflow-temp-location",
        help="gs:// temp folder of Dataflow (default: PIPELINE_ROOT/dataflow/tmp) [TAXI_DATAFLOW_TEMP_LOCATION]",
    )
    parser.add_argument("--dataflow-machine-type", help="Dataflow worker machine type, e.g. n1-standard-4")
    parser.add_argument("--dataflow-max-workers", type=int, help="ceiling of Dataflow autoscaling")
    parser.add_argument("--service-account", help="service account of the Vertex job and Dataflow workers [TAXI_SERVICE_ACCOUNT]")
    parser.add_argument("--train-steps", type=int, default=configs.PipelineOptions.train_steps)
    parser.add_argument("--eval-steps", type=int, default=configs.PipelineOptions.eval_steps)
    parser.add_argument("--submit", action="store_true", help="submit the compiled spec as a Vertex AI PipelineJob")
    return parser.parse_args(argv)


def main(argv: Optional[Sequence[str]] = None, environ: Mapping[str, str] = os.environ) -> int:
    """Compiles (and with --submit, submits) the pipeline; returns the exit code."""
    args = parse_args(argv)
    try:
        settings = settings_from_args(args, environ)
    except VertexConfigError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    from pipeline.runners.code_fingerprint import module_fingerprint, project_fingerprint

    job = compile_pipeline(settings, args.output, module_fingerprint(), project_fingerprint())
    steps = sorted(job["pipelineSpec"]["root"]["dag"]["tasks"])
    print(f"wrote {args.output}: {len(steps)} steps ({', '.join(steps)}) in image {settings.image}")
    print(json.dumps({"spans": settings.spans, "beam_args": beam_args(settings)}))
    if args.submit:
        print(f"submitted {submit(settings, args.output)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
