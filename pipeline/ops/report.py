"""One static HTML page per pipeline run: data, drift, evaluation, decision, timings, lineage.

The page opens from disk in any browser: inline CSS and inline SVG only, no script, no
external resource. TFDV's own statistics view (`tfdv.utils.display_util.get_statistics_html`)
is not used: it loads the Facets web components from cdnjs and raw.githubusercontent.com
through an HTML import, which needs the network and which current browsers no longer support.
The per-feature statistics are rendered here as tables with small histograms instead.
"""
import argparse
import datetime
import html
import logging
import os
import sys
from typing import Any, Dict, Iterable, List, Optional, Sequence, Tuple

from ml_metadata import metadata_store
from ml_metadata.proto import metadata_store_pb2
from tfx.components.statistics_gen.stats_artifact_utils import BINARY_PB_BASENAME

from pipeline import component_ids, configs
from pipeline.ops import lineage, metadata, run_summary
from pipeline.ops.metadata import OutputLayout
from pipeline.spans import spans_text

logger = logging.getLogger(__name__)

# Slices with fewer examples are shown greyed: their metrics are mostly noise.
MIN_SLICE_EXAMPLES = run_summary.MIN_SLICE_EXAMPLES
SLICE_METRICS = ("example_count", "auc", "binary_accuracy")

_CSS = """
body { font: 14px/1.45 -apple-system, "Segoe UI", Roboto, "DejaVu Sans", sans-serif; margin: 24px 32px; color: #1d2330; background: #fff; }
h1 { font-size: 22px; margin: 0 0 4px; }
h2 { font-size: 17px; margin: 28px 0 8px; border-bottom: 2px solid #d8dde6; padding-bottom: 4px; }
h3 { font-size: 14px; margin: 16px 0 6px; }
.meta { color: #5b6475; }
.decision { padding: 12px 16px; border-radius: 6px; font-size: 16px; margin: 16px 0; }
.decision.ok { background: #e3f5e8; border-left: 6px solid #1e8e3e; }
.decision.no { background: #fde7e6; border-left: 6px solid #c5221f; }
.decision.none { background: #eef0f4; border-left: 6px solid #80868b; }
table { border-collapse: collapse; margin: 6px 0 12px; }
th, td { padding: 3px 10px; border-bottom: 1px solid #e3e6ec; text-align: left; vertical-align: top; }
th { background: #f3f5f9; font-weight: 600; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
tr.small td { color: #9aa0a6; }
.bad { color: #c5221f; font-weight: 600; }
.good { color: #1e8e3e; font-weight: 600; }
code { font: 12px "DejaVu Sans Mono", Menlo, monospace; background: #f3f5f9; padding: 1px 4px; border-radius: 3px; word-break: break-all; }
svg.hist rect { fill: #4a7bd0; }
"""


def _e(value: Any) -> str:
    return html.escape("" if value is None else str(value))


def number_text(value: Optional[float]) -> str:
    """A metric or statistic for a reader: 4 decimals, whole numbers from 100, "n/a" for NaN."""
    if value is None:
        return "-"
    if value != value:  # NaN: TFMA's AUC of a slice without positives
        return "n/a"
    return f"{value:,.0f}" if abs(value) >= 100 else f"{value:.4f}"


def count_text(value: Optional[float]) -> str:
    """A count for a reader, with thousands separators."""
    return "-" if value is None else f"{value:,.0f}"


def _table(headers: Sequence[str], rows: Iterable[Sequence[str]], numeric: Sequence[int] = (), row_classes: Optional[List[str]] = None) -> str:
    """Renders a table; cells are HTML already escaped by the caller."""
    head = "".join(f"<th>{_e(header)}</th>" for header in headers)
    body = []
    for index, row in enumerate(rows):
        css = f' class="{row_classes[index]}"' if row_classes and row_classes[index] else ""
        cells = "".join(f'<td class="num">{cell}</td>' if i in numeric else f"<td>{cell}</td>" for i, cell in enumerate(row))
        body.append(f"<tr{css}>{cells}</tr>")
    return f"<table><tr>{head}</tr>{''.join(body)}</table>"


def _histogram_svg(counts: Sequence[float], width: int = 120, height: int = 28) -> str:
    """A tiny bar chart of a histogram's bucket counts, as inline SVG."""
    if not counts or max(counts) <= 0:
        return ""
    bar = width / len(counts)
    top = max(counts)
    bars = "".join(
        f'<rect x="{i * bar:.1f}" y="{height - height * c / top:.1f}" width="{max(bar - 1, 1):.1f}" height="{height * c / top:.1f}"/>'
        for i, c in enumerate(counts)
    )
    return f'<svg class="hist" width="{width}" height="{height}" viewBox="0 0 {width} {height}">{bars}</svg>'


def _statistics_section(statistics_uri: Optional[str]) -> str:
    """Per split, one table of numeric and one of categorical features."""
    if not statistics_uri:
        return "<p>No statistics: StatisticsGen did not run in this run.</p>"
    import tensorflow_data_validation as tfdv

    parts = []
    for split in sorted(os.listdir(statistics_uri)):
        stats_file = os.path.join(statistics_uri, split, BINARY_PB_BASENAME)
        if not split.startswith("Split-") or not os.path.exists(stats_file):
            continue
        dataset = tfdv.load_stats_binary(stats_file).datasets[0]
        parts.append(f"<h3>{_e(split[len('Split-'):])} split: {dataset.num_examples:,} examples</h3>")
        numeric_rows, string_rows = [], []
        for feature in sorted(dataset.features, key=lambda f: ".".join(f.path.step) or f.name):
            name = _e(".".join(feature.path.step) or feature.name)
            if feature.HasField("num_stats"):
                stats = feature.num_stats
                common = stats.common_stats
                histogram = next((h for h in stats.histograms if h.type == h.STANDARD), None)
                missing = common.num_missing / max(common.num_missing + common.num_non_missing, 1)
                numeric_rows.append([
                    name, number_text(common.num_non_missing), f"{missing:.1%}", number_text(stats.mean), number_text(stats.std_dev),
                    number_text(stats.min), number_text(stats.median), number_text(stats.max),
                    _histogram_svg([b.sample_count for b in histogram.buckets]) if histogram else "",
                ])
            elif feature.HasField("string_stats"):
                stats = feature.string_stats
                common = stats.common_stats
                missing = common.num_missing / max(common.num_missing + common.num_non_missing, 1)
                top = ", ".join(f"{_e(v.value)} ({v.frequency:,.0f})" for v in stats.top_values[:3])
                string_rows.append([name, count_text(common.num_non_missing), f"{missing:.1%}", count_text(stats.unique), top])
        if numeric_rows:
            parts.append(_table(["numeric feature", "count", "missing", "mean", "std dev", "min", "median", "max", "histogram"], numeric_rows, numeric=(1, 2, 3, 4, 5, 6, 7)))
        if string_rows:
            parts.append(_table(["categorical feature", "count", "missing", "unique", "top values"], string_rows, numeric=(1, 2, 3)))
    return "".join(parts) or "<p>The statistics artifact holds no split.</p>"


def _drift_section(drift: Optional[Dict[str, Any]]) -> str:
    """Renders a drift report when the run has one: the newest span's (pipeline.components.drift_check's JSON,
    against the window's earlier spans) or a joined table's (against the previous span)."""
    if not drift:
        return "<p>No drift check in this run.</p>"
    if "checked_span" in drift:
        if not drift["reference_spans"]:
            return f"<p>Drift not checked: span {_e(drift['checked_span'])} is the only span in the window.</p>"
        against = f"Span {_e(drift['checked_span'])} against spans {_e(spans_text(drift['reference_spans']))} (the window's earlier spans)"
    elif drift.get("compared_spans"):
        against = f"Span {_e(drift['compared_spans'][1])} against span {_e(drift['compared_spans'][0])}"
    else:
        return "<p>Drift not checked: the window holds one span.</p>"
    scores = drift.get("scores", [])
    drifted = [s for s in scores if s.get("drifted")]
    head = (
        f"<p>{against}; policy on drift: <b>{_e(drift.get('on_drift'))}</b>. "
        + (f'<span class="bad">Over threshold: {_e(", ".join(s["feature"] for s in drifted))}</span>' if drifted else '<span class="good">No column over its threshold.</span>')
        + "</p>"
    )
    rows = [
        [_e(s.get("feature")), _e(s.get("measure")), number_text(s.get("score")), number_text(s.get("threshold")),
         '<span class="bad">drifted</span>' if s.get("drifted") else ("ok" if s.get("judged", True) else _e(s.get("note", "not judged")))]
        for s in scores
    ]
    return head + _table(["feature", "measure", "score", "threshold", ""], rows, numeric=(2, 3))


def _external_section(summary: run_summary.RunSummary, statistics_uri: Optional[str]) -> str:
    """The external tables the run joined, and the checks of the joined columns per span."""
    if not summary.external_tables:
        return "<p>No external table was imported in this run.</p>"
    rows = [
        [_e(name), f"<code>{_e(record['source_uri'])}</code>", f"<code>{_e(record['sha256'])}</code>",
         count_text(record["rows"]), _e(f"{record['first_key']} .. {record['last_key']}")]
        for name, record in sorted(summary.external_tables.items())
    ]
    parts = [_table(["table", "source", "sha256", "rows", "keys"], rows, numeric=(3,))]
    for name, checked in sorted(((summary.external_report or {}).get("tables") or {}).items()):
        span_rows = [[_e(span), count_text(counts["trips"]), count_text(counts["unmatched"])] for span, counts in checked["spans"].items()]
        parts.append(f"<h3>{_e(name)}: trips joined per span</h3>")
        parts.append(_table(["span", "trips", "no row in the table"], span_rows, numeric=(1, 2)))
        if checked["anomalies"]:
            parts.append("<ul>" + "".join(f'<li class="bad">{_e(line)}</li>' for line in checked["anomalies"]) + "</ul>")
        parts.append(f"<h3>{_e(name)}: drift of the joined columns</h3>")
        parts.append(_drift_section({**checked, "on_drift": summary.external_report.get("on_drift")}))
    parts.append("<h3>Statistics of the joined columns</h3>")
    parts.append(_statistics_section(statistics_uri))
    return "".join(parts)


def _evaluation_section(summary: run_summary.RunSummary, thresholds: Dict[str, str]) -> str:
    if not summary.metrics:
        return "<p>Not evaluated: the run stopped before the Evaluator.</p>"
    overall = [
        [_e(name), *((count_text(v) if name == "example_count" else number_text(v)) for v in (candidate, baseline)), _e(thresholds.get(name, ""))]
        for name, (candidate, baseline) in sorted(summary.metrics.items())
    ]
    parts = ["<h3>Whole evaluation split</h3>", _table(["metric", "new model", "serving model (baseline)", "threshold"], overall, numeric=(1, 2))]
    gate = run_summary.gate_rows(summary.gate)
    if gate:
        parts.append("<h3>Against trivial baselines, on card-paid trips and on the newest span</h3>")
        parts.append(
            _table(
                ["check", "new model", "compared with", "rule"],
                [[_e(check), number_text(candidate), number_text(compared), _e(rule)] for check, candidate, compared, rule in gate],
                numeric=(1, 2),
            )
        )
    if summary.slices:
        def order(label: str) -> Tuple[str, float, str]:
            column, _, value = label.partition("=")
            try:
                return column, float(value), ""
            except ValueError:
                return column, 0.0, value

        labels = sorted(summary.slices, key=order)
        rows = [[_e(label)] + [count_text(summary.slices[label].get(metric)) if metric == "example_count" else number_text(summary.slices[label].get(metric)) for metric in SLICE_METRICS] for label in labels]
        classes = ["small" if summary.slices[label].get("example_count", 0) < MIN_SLICE_EXAMPLES else "" for label in labels]
        parts.append(f"<h3>By slice (new model; greyed: fewer than {MIN_SLICE_EXAMPLES} examples)</h3>")
        parts.append(_table(["slice"] + list(SLICE_METRICS), rows, numeric=(1, 2, 3), row_classes=classes))
    return "".join(parts)


def decision_text(summary: run_summary.RunSummary) -> Tuple[str, str, List[str]]:
    """Returns (css class, headline, reasons) of a run's decision, in the run summary's words."""
    reasons: List[str] = []
    if summary.anomalies:
        return "no", "DATA REFUSED: nothing was trained or pushed", list(summary.anomalies)
    drifted = getattr(summary, "drifted", [])
    if summary.blessed is None:
        if drifted:
            reasons.append(f"drift over threshold: {', '.join(drifted)}")
        return "none", "NOT EVALUATED: the run stopped before the Evaluator", reasons
    if summary.blessed:
        headline, css = "BLESSED: every threshold met", "ok"
    else:
        headline, css = "NOT BLESSED", "no"
        reasons.extend(summary.failed_thresholds)
    if drifted:
        reasons.append(f"trained despite drift over threshold (policy {(summary.drift or {}).get('on_drift')}): {', '.join(drifted)}")
    serves = getattr(summary, "serves", None)
    if serves is not None:
        detail = getattr(summary, "serving_check_detail", "") or ""
        reasons.append(f"serving check {'passed' if serves else 'FAILED'}{': ' + detail if detail else ''}")
    already = getattr(summary, "already_serving_version", None)
    if summary.pushed_version:
        reasons.append(f"pushed as version {summary.pushed_version} to {summary.pushed_path}")
    elif already:
        reasons.append(f"not pushed: this same model already serves as version {already}")
    else:
        reasons.append("nothing pushed")
    return css, headline, reasons


def _lineage_section(found: Optional[lineage.Lineage], note: str) -> str:
    if found is None:
        return f"<p>{_e(note)}</p>"
    rows = [
        ["push", f"version {_e(found.version)} at {_e(found.push.pushed_at_utc)} &rarr; <code>{_e(found.push.destination)}</code>"],
        ["metadata", _e(found.metadata_path)],
    ]
    if found.blessing is not None:
        rows.append(["blessing", f"{'blessed' if found.blessed else 'NOT blessed'} (ModelBlessing #{found.blessing.id})"])
    if found.evaluation is not None:
        baseline = found.evaluation.baseline_model
        rows.append(["compared with", f"Model #{baseline.id} <code>{_e(baseline.uri)}</code>" if baseline else "no baseline (first blessed model)"])
    if found.trainer is not None:
        trainer = found.trainer
        rows.append(["model", f"<code>{_e(trainer.model.uri)}</code> (Trainer execution #{trainer.model.execution_id}), "
                     f"{_e(trainer.train_steps)} train / {_e(trainer.eval_steps)} eval steps, hyperparameters {_e(trainer.hyperparameters or 'defaults')}"])
        rows.append(["module fingerprint", f"<code>{_e(trainer.module_fingerprint or '-')}</code>"])
    if found.transform is not None:
        rows.append(["transform graph", f"<code>{_e(found.transform.transform_graph.uri)}</code>"])
    if found.schema is not None:
        rows.append(["schema", f"<code>{_e(found.schema.schema_file)}</code> sha256 <code>{_e(found.schema.sha256)}</code>"])
    if found.data is not None:
        files = "<br>".join(f"<code>{_e(f.path)}</code> sha256 <code>{_e(f.sha256[:16])}&hellip;</code> ({_e(f.status_now)})" for f in found.data.files)
        rows.append(["data", f"spans {_e(','.join(str(s) for s in found.data.spans))}<br>{files}"])
    return f"<p>{_e(note)}</p>" + _table(["", ""], rows)


def _node_outputs(store, pipeline_name: str, node_id: str, after_execution_id: int) -> Dict[str, List[metadata_store_pb2.Artifact]]:
    # run_summary's reader already picks the newest completed (or cached) execution of the run.
    return run_summary.latest_node_outputs(store, pipeline_name, node_id, after_execution_id)


def _report_path(output_dir: str, now: datetime.datetime) -> str:
    folder = OutputLayout(output_dir).reports_dir
    os.makedirs(folder, exist_ok=True)
    stem = os.path.join(folder, f"run-{now.strftime('%Y%m%d-%H%M%S')}")
    path, suffix = f"{stem}.html", 1
    while os.path.exists(path):
        suffix += 1
        path = f"{stem}-{suffix}.html"
    return path


def write_report(
    output_dir: str,
    connection_config: metadata_store_pb2.ConnectionConfig,
    pipeline_name: str,
    after_execution_id: int,
    timings: Sequence[Tuple[str, str, float]],
    metadata_text: str = "",
) -> str:
    """Writes the HTML report of one run and returns its path.

    Args:
        output_dir: The run's output dir; the page goes to `output_dir/reports/run-<UTC time>.html`.
        connection_config: The ML Metadata the run wrote to.
        pipeline_name: The pipeline's name.
        after_execution_id: `run_summary.newest_execution_id(...)` taken before the run.
        timings: (component, state, seconds) per component, e.g. `ProgressHandler.timings`.
        metadata_text: Where the metadata is, in words (`MetadataSetting.describe`; default:
            the SQLite file under `output_dir`).

    Returns:
        The path of the written file.
    """
    output_dir = os.path.abspath(output_dir)
    now = datetime.datetime.now(tz=datetime.timezone.utc)
    summary = run_summary.collect(connection_config, pipeline_name, after_execution_id)
    store = metadata_store.MetadataStore(connection_config)
    statistics = _node_outputs(store, pipeline_name, component_ids.STATISTICS_GEN, after_execution_id).get("statistics")
    joined_statistics = _node_outputs(store, pipeline_name, component_ids.EXTERNAL_FEATURE_CHECK, after_execution_id).get("joined_statistics")
    thresholds: Dict[str, str] = {}
    evaluation = _node_outputs(store, pipeline_name, component_ids.EVALUATOR, after_execution_id).get("evaluation")
    if evaluation:
        evaluator_id = lineage.MetadataGraph(store, pipeline_name).producer(evaluation[0].id)
        if evaluator_id is not None:
            eval_config = lineage.json_exec_property(store.get_executions_by_id([evaluator_id])[0], "eval_config")
            thresholds = lineage.thresholds_from_eval_config(eval_config or {})

    serving_model_dir = OutputLayout(output_dir).serving_model_dir
    traced: Optional[lineage.Lineage] = None
    version = summary.pushed_version
    if version is None:
        try:
            version = lineage.latest_serving_version(serving_model_dir)
        except lineage.LineageError as error:
            lineage_note = f"No serving version: {error}"
    if version is not None:
        try:
            traced = lineage.trace_with_store(
                store, metadata_text or OutputLayout(output_dir).metadata_path, output_dir, version, pipeline_name
            )
            lineage_note = f"Version {version}, {'pushed by this run' if summary.pushed_version else 'the serving version (this run pushed nothing)'}:"
        except lineage.LineageError as error:
            lineage_note = f"Lineage of version {version} unavailable: {error}"

    css, headline, reasons = decision_text(summary)
    total = sum(seconds for _, _, seconds in timings)
    timing_rows = [[_e(name), _e(state), f"{seconds:.1f}"] for name, state, seconds in timings]
    anomalies = (
        "<p>Not checked: the run stopped before ExampleValidator.</p>" if summary.anomalies is None
        else '<p class="good">No anomaly against the curated schema.</p>' if not summary.anomalies
        else "<ul>" + "".join(f'<li class="bad">{_e(line)}</li>' for line in summary.anomalies) + "</ul>"
    )
    accepted = "".join(
        f"<p>Span {_e(record['span'])} accepted on record {_e(record['record'])} by {_e(record['accepted_by'])} "
        f"at {_e(record['accepted_at'])}: <i>{_e(record['reason'])}</i></p>"
        for record in summary.acceptances
    )
    if summary.accepted:
        accepted += "<ul>" + "".join(f"<li>accepted: {_e(line)}</li>" for line in summary.accepted) + "</ul>"
    body = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{_e(pipeline_name)} run {_e(now.strftime('%Y-%m-%d %H:%M:%S UTC'))}</title>
<style>{_CSS}</style></head><body>
<h1>Pipeline run report: {_e(pipeline_name)}</h1>
<div class="meta">{_e(now.strftime('%Y-%m-%d %H:%M:%S UTC'))} &middot; output <code>{_e(output_dir)}</code> &middot; spans {_e(summary.spans or '-')} &middot; executions after #{after_execution_id}</div>
<div class="decision {css}" id="decision"><b>Decision: {_e(headline)}</b>
<ul>{''.join(f'<li>{_e(reason)}</li>' for reason in reasons)}</ul></div>
<h2>Evaluation</h2>{_evaluation_section(summary, thresholds)}
<h2>Data: anomalies</h2>{anomalies}
<h2>Data: accepted after review</h2>{accepted or '<p>No span of this window was accepted after a refusal.</p>'}
<h2>Data: drift</h2>{_drift_section(getattr(summary, 'drift', None))}
<h2>Data: statistics</h2>{_statistics_section(statistics[0].uri if statistics else None)}
<h2>Data: external tables</h2>{_external_section(summary, joined_statistics[0].uri if joined_statistics else None)}
<h2>Components</h2>{_table(['component', 'state', 'seconds'], timing_rows, numeric=(2,)) if timings else '<p>No timings recorded.</p>'}
<p class="meta">total {total:.1f}s</p>
<h2>Lineage of what serves</h2>{_lineage_section(traced, lineage_note)}
</body></html>
"""
    path = _report_path(output_dir, now)
    with open(path, "w", encoding="utf-8") as report_file:
        report_file.write(body)
    logger.info("wrote the run report %s", path)
    return path


def newest_run_start(store, pipeline_name: str = configs.PIPELINE_NAME) -> int:
    """The execution id just before the newest run of the pipeline began (its first execution's
    id minus one), for `write_report`'s `after_execution_id`.

    Raises:
        lineage.LineageError: when ML Metadata holds no run of the pipeline.
    """
    pipeline_context = store.get_context_by_type_and_name("pipeline", pipeline_name)
    newest_only = metadata_store.ListOptions(limit=1, order_by=metadata_store.OrderByField.ID, is_asc=False)
    executions = store.get_executions_by_context(pipeline_context.id, list_options=newest_only) if pipeline_context else []
    if not executions:
        raise lineage.LineageError(f"ML Metadata holds no run of {pipeline_name}")
    newest = executions[0]
    run_type = store.get_context_type("pipeline_run")
    runs = [context for context in store.get_contexts_by_execution(newest.id) if context.type_id == run_type.id]
    members = store.get_executions_by_context(runs[0].id) if runs else [newest]
    return min(execution.id for execution in members) - 1


def main(argv: Optional[Sequence[str]] = None) -> int:
    """`python -m pipeline report`: writes the HTML report of the newest run again; 0, or 1
    when the output dir holds no run."""
    parser = argparse.ArgumentParser(prog="python -m pipeline report", description="Writes the HTML report of the newest run in an output dir.")
    parser.add_argument("--output-dir", required=True, help="the run's output dir (metadata.db, pipeline_root/, serving_model/)")
    metadata.add_metadata_flag(parser)
    args = parser.parse_args(argv)
    output_dir = os.path.abspath(args.output_dir)
    try:
        setting = metadata.setting_from(args.metadata_url)
        store = lineage.open_store(output_dir, setting)
        after = newest_run_start(store)
    except (lineage.LineageError, metadata.MetadataSettingError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    connection = setting.connection_config(output_dir, metadata.READ)
    print(write_report(output_dir, connection, configs.PIPELINE_NAME, after, (), setting.describe(output_dir)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
