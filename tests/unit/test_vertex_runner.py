"""pipeline.runners.vertex: the compiled Vertex AI spec (offline), its settings and submission."""
import json
import pathlib
import sys
import types

import pytest

from pipeline import component_ids, configs, dag
from pipeline.runners import vertex
from pipeline.validation.table_sources import resolve_sources

IMAGE = "us-central1-docker.pkg.dev/my-project/tfx/taxi:7"
FLAGS = [
    "--image", IMAGE,
    "--project", "my-project",
    "--pipeline-root", "gs://my-bucket/root",
    "--data-root", "gs://my-bucket/data",
    "--serving-model-dir", "gs://my-bucket/serving",
    "--spans", "2-4",
    "--dataflow-machine-type", "n1-standard-4",
]  # fmt: skip
# The resolver node becomes two resolver steps on Vertex (latest blessing, then its model);
# steps that read the resolved model wait for the second.
RESOLVER_STEPS = {
    f"{component_ids.MODEL_RESOLVER}-model-blessing-resolver",
    f"{component_ids.MODEL_RESOLVER}-model-resolver",
}
BEAM_POWERED = [
    component_ids.EXAMPLE_GEN,
    component_ids.STATISTICS_GEN,
    component_ids.TRANSFORM,
    component_ids.EVALUATOR,
    component_ids.NEWEST_SPAN_EXAMPLE_GEN,
    component_ids.NEWEST_SPAN_EVALUATOR,
    component_ids.TRIVIAL_BASELINES,
]


@pytest.fixture(scope="module")
def compiled(tmp_path_factory):
    output = tmp_path_factory.mktemp("vertex") / "taxi_pipeline.json"
    assert vertex.main(FLAGS + ["--output", str(output)], environ={}) == 0
    return json.loads(output.read_text())


def _settings(flags, environ=None):
    return vertex.settings_from_args(vertex.parse_args(["--output", "x.json"] + flags), environ or {})


def _tasks(job):
    return job["pipelineSpec"]["root"]["dag"]["tasks"]


def _pipeline_upstream() -> dict:
    """Each node of the pipeline (as create_pipeline builds it) with the ids it waits for."""
    pipeline = dag.create_pipeline(
        pipeline_name=vertex.VERTEX_PIPELINE_NAME,
        pipeline_root="gs://unused/root",
        data_root="gs://unused/data",
        spans=[2, 3, 4],  # the window the compiled pipeline reads (see `compiled`)
        serving_model_dir="gs://unused/serving",
        metadata_connection_config=None,
        options=configs.PipelineOptions(external_tables=vertex.container_table_sources()),
    )
    return {node.id: {upstream.id for upstream in node.upstream_nodes} for node in pipeline.components}


def test_one_step_per_pipeline_node_with_the_pipelines_dependencies(compiled):
    expected = _pipeline_upstream()
    assert set(_tasks(compiled)) == (set(expected) - {component_ids.MODEL_RESOLVER}) | RESOLVER_STEPS
    resolved_model = f"{component_ids.MODEL_RESOLVER}-model-resolver"
    for task, upstream in expected.items():
        if task == component_ids.MODEL_RESOLVER:
            continue
        upstream = {resolved_model if node == component_ids.MODEL_RESOLVER else node for node in upstream}
        assert set(_tasks(compiled)[task].get("dependentTasks", [])) == upstream, task
    assert compiled["pipelineSpec"]["pipelineInfo"]["name"] == vertex.VERTEX_PIPELINE_NAME


@pytest.mark.parametrize(
    "task, upstream",
    [
        (component_ids.STATISTICS_GEN, component_ids.EXAMPLE_GEN),
        (component_ids.TRANSFORM, component_ids.DATA_GATE),
        (component_ids.TRAINER, component_ids.TRANSFORM),
        (component_ids.EVALUATOR, f"{component_ids.MODEL_RESOLVER}-model-resolver"),
        (component_ids.MODEL_GATE, component_ids.EVALUATOR),
        (component_ids.MODEL_GATE, component_ids.NEWEST_SPAN_EVALUATOR),
        (component_ids.PUSHER, component_ids.MODEL_GATE),
    ],
)
def test_steps_wait_for_the_steps_they_need(compiled, task, upstream):
    assert upstream in _tasks(compiled)[task]["dependentTasks"]


def _executor(job, task):
    executors = job["pipelineSpec"]["deploymentSpec"]["executors"]
    return executors[f"{task}_executor"]["container"]


def test_every_container_step_runs_in_the_project_image(compiled):
    for task in set(_pipeline_upstream()) - {component_ids.MODEL_RESOLVER}:
        assert _executor(compiled, task)["image"] == IMAGE


def test_beam_powered_steps_carry_the_dataflow_arguments(compiled):
    for task in BEAM_POWERED:
        args = _executor(compiled, task)["args"]
        assert "--runner=DataflowRunner" in args, task
        assert "--project=my-project" in args
        assert "--region=us-central1" in args
        assert "--temp_location=gs://my-bucket/root/dataflow/tmp" in args
        assert "--machine_type=n1-standard-4" in args
        assert f"--sdk_container_image={IMAGE}" in args
        assert "--experiments=use_runner_v2" in args


def test_locations_spans_and_schema_are_the_configured_ones(compiled):
    text = json.dumps(compiled)
    assert '"gs://my-bucket/data"' in text
    assert "gs://my-bucket/serving" in text
    assert compiled["runtimeConfig"]["gcsOutputDirectory"] == "gs://my-bucket/root"
    # The schema is read inside the image, not from this machine's checkout.
    assert vertex.CONTAINER_SCHEMA_PATH in text
    assert str(pathlib.Path(configs.CURATED_SCHEMA_PATH)) not in text
    # Spans 2-4 travel in ExampleGen's custom_config.
    parameter = _tasks(compiled)[component_ids.EXAMPLE_GEN]["inputs"]["parameters"]["custom_config"]
    custom_config = json.loads(parameter["runtimeValue"]["constantValue"]["stringValue"])
    window = custom_config["custom_config"]["value"]
    assert (window["first_span"], window["last_span"]) == (2, 4)
    # ExampleGen types the rows with the schema inside the image, too.
    assert window["schema_path"] == vertex.CONTAINER_SCHEMA_PATH


def test_external_tables_are_read_inside_the_image_with_this_checkout_s_fingerprint(compiled):
    parameter = _tasks(compiled)[component_ids.EXTERNAL_TABLE_GEN]["inputs"]["parameters"]["sources"]
    (source,) = json.loads(parameter["runtimeValue"]["constantValue"]["stringValue"])
    (shipped,) = resolve_sources()
    assert source["uri"] == f"{vertex.CONTAINER_REPO_ROOT}/data/external/us_il_holidays/v1/holidays.csv"
    assert source["sha256"] == shipped.sha256


def test_the_dockerfile_builds_the_image_the_spec_expects():
    dockerfile = (pathlib.Path(__file__).resolve().parents[2] / "Dockerfile").read_text()
    assert "FROM tensorflow/tfx:1.16.0" in dockerfile
    assert f"WORKDIR {vertex.CONTAINER_REPO_ROOT}" in dockerfile
    assert "pip install --no-cache-dir --no-deps ." in dockerfile


def test_direct_beam_runner_keeps_beam_inside_the_step():
    settings = _settings(FLAGS[:-2] + ["--beam-runner", "direct"])
    assert vertex.beam_args(settings) == ["--runner=DirectRunner", "--direct_running_mode=in_memory"]


def test_flags_fall_back_to_environment_variables():
    environ = {
        "TAXI_IMAGE": IMAGE,
        "TAXI_PROJECT": "env-project",
        "TAXI_REGION": "europe-west4",
        "TAXI_PIPELINE_ROOT": "gs://b/root/",
        "TAXI_DATA_ROOT": "gs://b/data",
        "TAXI_SERVING_MODEL_DIR": "gs://b/serving",
        "TAXI_SPANS": "3",
    }
    settings = _settings([], environ)
    assert (settings.project, settings.region, settings.spans) == ("env-project", "europe-west4", [3])
    assert settings.pipeline_root == "gs://b/root"
    assert _settings(["--project", "flag-project"], environ).project == "flag-project"


@pytest.mark.parametrize(
    "text, spans", [("1-4", [1, 2, 3, 4]), ("3", [3]), (" 2-2 ", [2])]
)
def test_span_ranges(text, spans):
    assert vertex.parse_spans(text) == spans


def _without(flag):
    index = FLAGS.index(flag)
    return FLAGS[:index] + FLAGS[index + 2 :]


def _replaced(flag, value):
    index = FLAGS.index(flag)
    return FLAGS[: index + 1] + [value] + FLAGS[index + 2 :]


@pytest.mark.parametrize(
    "flags, message",
    [
        (_without("--image"), "--image (or TAXI_IMAGE) is required"),
        (_replaced("--image", "taxi"), "--image must be a registry image"),
        (_without("--project"), "--project (or TAXI_PROJECT) is required"),
        (_without("--spans"), "--spans (or TAXI_SPANS) is required"),
        (_replaced("--spans", "4-1"), "spans '4-1': the first span is after the last"),
        (_replaced("--spans", "one-four"), "spans must be FIRST-LAST or N"),
        (_replaced("--spans", "1-2-3"), "spans must be FIRST-LAST or N"),
        (_replaced("--pipeline-root", "/tmp/root"), "--pipeline-root (or TAXI_PIPELINE_ROOT) must be a gs:// location, got '/tmp/root'"),
        (_replaced("--data-root", "gs://"), "--data-root (or TAXI_DATA_ROOT) must be a gs:// location"),
        (_replaced("--serving-model-dir", "serving"), "--serving-model-dir (or TAXI_SERVING_MODEL_DIR) must be a gs:// location"),
        (FLAGS + ["--dataflow-temp-location", "/tmp"], "--dataflow-temp-location (or TAXI_DATAFLOW_TEMP_LOCATION) must be a gs:// location"),
        (FLAGS + ["--dataflow-max-workers", "0"], "Dataflow max_num_workers must be at least 1, got 0"),
        (FLAGS + ["--region", "Iowa"], "Dataflow region must look like 'us-central1', got 'Iowa'"),
        (FLAGS + ["--train-steps", "0"], "--train-steps must be at least 1, got 0"),
    ],
)
def test_bad_settings_are_refused_with_the_flag_named(flags, message, capsys, tmp_path):
    assert vertex.main(flags + ["--output", str(tmp_path / "p.json")], environ={}) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "p.json").exists()


def test_submit_creates_a_vertex_pipeline_job(monkeypatch, tmp_path):
    calls = {}

    class FakePipelineJob:
        resource_name = "projects/1/locations/us-central1/pipelineJobs/taxi-1"

        def __init__(self, **kwargs):
            calls["job"] = kwargs

        def submit(self, service_account=None):
            calls["service_account"] = service_account

    fake = types.SimpleNamespace(init=lambda **kwargs: calls.setdefault("init", kwargs), PipelineJob=FakePipelineJob)
    monkeypatch.setitem(sys.modules, "google.cloud.aiplatform", fake)
    monkeypatch.setattr("google.cloud.aiplatform", fake, raising=False)
    settings = _settings(FLAGS + ["--service-account", "runner@my-project.iam.gserviceaccount.com"])
    assert vertex.submit(settings, str(tmp_path / "p.json")) == FakePipelineJob.resource_name
    assert calls["init"] == {"project": "my-project", "location": "us-central1"}
    assert calls["job"] == {
        "display_name": vertex.VERTEX_PIPELINE_NAME,
        "template_path": str(tmp_path / "p.json"),
        "pipeline_root": "gs://my-bucket/root",
        "enable_caching": True,
    }
    assert calls["service_account"] == "runner@my-project.iam.gserviceaccount.com"
