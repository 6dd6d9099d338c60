"""The Grafana dashboard and the Prometheus alert rules query only series a model server exports:
every metric name and every label they use is read off a real server's metrics page."""
import json
import pathlib
import re
from typing import Dict, Iterator, Set, Tuple

import pytest
import yaml

from pipeline.configs import SERVING_MODEL_NAME
from tests.integration.serving_fixtures import OFFSET_V1, make_base_path, model_templates, rest_call, start_server  # noqa: F401

CONFIG = pathlib.Path(__file__).resolve().parents[2] / "serving" / "deploy" / "config"
DASHBOARD = CONFIG / "grafana" / "big_tipper.json"
ALERTS = CONFIG / "alerts.yml"
METRICS_PATH = "/monitoring/prometheus/metrics"
# Prometheus's own series (not the server's) that the rules may use, with their labels.
PROMETHEUS_SERIES = {"up": {"job", "instance"}}
# Series names in PromQL: TensorFlow Serving's all start with ":"; "up" is Prometheus's.
_NAME = re.compile(r"(?<![\w:])(:[A-Za-z_][\w:]*\w|up)(?![\w:(])")
_SELECTOR = re.compile(r"(:[A-Za-z_][\w:]*\w|up)\{([^}]*)\}")
_GROUPING = re.compile(r"\b(?:by|without)\s*\(([^)]*)\)")
_SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{([^}]*)\})?\s")


def _expressions() -> Iterator[Tuple[str, str]]:
    """(where, PromQL) of every dashboard target and alert rule."""
    dashboard = json.loads(DASHBOARD.read_text())
    for panel in dashboard["panels"]:
        for target in panel["targets"]:
            yield f"dashboard panel {panel['title']!r}", target["expr"]
    for group in yaml.safe_load(ALERTS.read_text())["groups"]:
        for rule in group["rules"]:
            yield f"alert {rule['alert']}", rule["expr"]


def _exported(page: str) -> Dict[str, Set[str]]:
    """Metric name -> its label names, from a Prometheus text page."""
    found: Dict[str, Set[str]] = {}
    for line in page.splitlines():
        match = _SAMPLE.match(line)
        if match and not line.startswith("#"):
            labels = {pair.split("=", 1)[0].strip() for pair in (match.group(2) or "").split(",") if "=" in pair}
            found.setdefault(match.group(1), set()).update(labels)
    return found


@pytest.fixture(scope="module")
def exported(tmp_path_factory, model_templates):  # noqa: F811 - pytest fixture injection
    """The metrics page of the project's server serving a model as big_tipper, after a request."""
    base_path = make_base_path(tmp_path_factory.mktemp("served") / SERVING_MODEL_NAME, model_templates, {"1": OFFSET_V1})
    server = start_server(model_name=SERVING_MODEL_NAME, model_base_path=str(base_path), prometheus_path=METRICS_PATH)
    try:
        trip = {"trip_miles": 1.5, "trip_start_hour": 19, "payment_type": "Credit Card"}
        status, _, _ = rest_call(f"{server.rest_url}/v1/models/{SERVING_MODEL_NAME}:predict", {"instances": [trip]})
        assert status == 200
        _, _, page = rest_call(server.rest_url + METRICS_PATH)
    finally:
        server.stop()
    return {**_exported(page), **PROMETHEUS_SERIES}


def test_every_metric_and_label_the_dashboard_and_alerts_use_is_exported(exported):
    problems = []
    expressions = list(_expressions())
    assert len(expressions) >= 8
    for where, expr in expressions:
        names = set(_NAME.findall(expr))
        assert names, f"{where}: no series in {expr!r}"
        problems += [f"{where}: {name} is not exported" for name in sorted(names - set(exported))]
        for name, matchers in _SELECTOR.findall(expr):
            if name not in exported:
                continue
            for matcher in filter(None, (part.strip() for part in matchers.split(","))):
                label = re.split(r"[=!~]", matcher, maxsplit=1)[0].strip()
                if label not in exported[name]:
                    problems.append(f"{where}: {name} has no label {label!r}")
        for grouping in _GROUPING.findall(expr):
            for label in filter(None, (part.strip() for part in grouping.split(","))):
                if not any(label in exported.get(name, set()) for name in names):
                    problems.append(f"{where}: groups by {label!r}, which none of {sorted(names)} has")
    assert problems == []


def test_the_checker_would_catch_a_misspelt_metric(exported):
    assert ":tensorflow:serving:request_counts" not in exported
    assert "le" in exported[":tensorflow:serving:request_latency_bucket"]
    assert {"model_path", "status"} <= exported[":tensorflow:cc:saved_model:load_attempt_count"]


def test_alerts_are_complete_and_provisioned():
    rules = [rule for group in yaml.safe_load(ALERTS.read_text())["groups"] for rule in group["rules"]]
    assert {rule["alert"] for rule in rules} == {"ModelServerDown", "ModelErrorRatioHigh", "ModelLatencyHigh", "ModelVersionFailedToLoad"}
    assert all(rule["annotations"]["summary"] and rule["labels"]["severity"] for rule in rules)
    prometheus = yaml.safe_load((CONFIG / "prometheus.yml").read_text())
    assert prometheus["rule_files"] == ["/etc/prometheus/alerts.yml"]
    compose = yaml.safe_load((CONFIG.parent / "docker-compose.yml").read_text())
    mounts = {(m["source"], m["target"]) for service in compose["services"].values() for m in service.get("volumes", []) if isinstance(m, dict)}
    assert ("./config/alerts.yml", "/etc/prometheus/alerts.yml") in mounts
    assert ("./config/grafana/big_tipper.json", "/var/lib/grafana/dashboards/big_tipper.json") in mounts
    provider = yaml.safe_load((CONFIG / "grafana" / "dashboards.yml").read_text())["providers"][0]
    assert provider["options"]["path"] == "/var/lib/grafana/dashboards"
    datasource = yaml.safe_load((CONFIG / "grafana" / "datasource.yml").read_text())["datasources"][0]
    dashboard = json.loads(DASHBOARD.read_text())
    assert all(target["datasource"]["uid"] == datasource["uid"] for panel in dashboard["panels"] for target in panel["targets"])
    assert len({panel["id"] for panel in dashboard["panels"]}) == len(dashboard["panels"])
