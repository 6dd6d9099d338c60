"""How the pipeline adapts to a later, shifted period: serving model, retrained models, trees.

Builds a data root of the shipped spans 1-4 (the history) and a synthetic later period made
from the shipped trips, then runs the real pipeline (run_once):

1. spans 1-4 into OUTPUT_DIR/all-spans: the serving model;
2. span 5 (the new period's first span) arrives: the data checks refuse it; the benchmark
   runs `python -m pipeline.accept` for it, as an owner would, and runs again on spans 1-5:
   the retrained model, pushed or not;
3. for each `--span-windows K`, the same data root into a fresh OUTPUT_DIR/window-K, with
   `span_window=K`: refused, accepted, run again;
4. spans 1-5 again, into fresh output dirs, with the history less the shipped trips the
   held-out trips were drawn from, and, as a control of the same size, less those span 5 was
   drawn from: what having learned a held-out trip's original is worth.

Then it scores every trained model (pushed or not) through its serving signature on
held-out trips of the shifted period (the year after span 5, never in any data root), next to
scikit-learn's HistGradientBoostingClassifier trained on the CSVs of the same spans, and,
for context, on the shipped span 4 (the old period: in the training data of every model but
the window of span 5 alone, so it shows what a model still fits, not how it generalizes).
AUC differences on the held-out trips come with paired bootstrap intervals.

    python benchmarks/adaptation.py --output-dir /tmp/adaptation
    python benchmarks/adaptation.py --output-dir /tmp/adaptation --span-windows 3 2 --seed 1

The shift (see `shift_period`): fares x1.6, trip miles and seconds x1.4, tips scaled with
the fare so that every trip keeps the label of the shipped trip it was drawn from; all four
coordinates empty in 60% of trips; five companies, 29% of trips, under names never seen
before; 30% of credit-card trips paid "Mobile" (in the schema's domain, in no shipped span);
start times moved to 2017 (span 5) and 2018 (held-out trips) by whole weeks. Span 5 and the
held-out trips are drawn, with `pipeline.data_tools.synthetic_data`'s noise, from two disjoint halves
of the shipped trips. Everything is seeded: the same seed writes the same files.
"""
import argparse
import csv
import dataclasses
import logging
import os
import shutil
import subprocess
import sys
import time
import warnings
from typing import Dict, List, Optional, Sequence, Tuple

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# Google client libraries' Python-version notices and TFMA's NaN recall of one-class slices.
warnings.filterwarnings("ignore", category=FutureWarning)
warnings.filterwarnings("ignore", category=RuntimeWarning)
warnings.filterwarnings("ignore", category=DeprecationWarning)

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from holdout_quality import boosted_scores, credit_card_rule, labels, saved_model_scores  # noqa: E402
from sklearn.metrics import accuracy_score, roc_auc_score  # noqa: E402

from modules import features  # noqa: E402
from pipeline import configs
from pipeline.data_tools.synthetic_data import MILES_KEY, SECONDS_KEY, UPPER_BOUNDS, SpanSource, read_span, synthesize  # noqa: E402
from pipeline.runners import progress  # noqa: E402
from pipeline.runners.code_fingerprint import module_fingerprint, project_fingerprint  # noqa: E402
from pipeline.runners.local import EXIT_DATA_REFUSED, EXIT_OK, LocalPaths, RunResult, local_beam_args, run_once  # noqa: E402
from pipeline.validation.table_sources import REPO_DATA_ROOT, resolve_sources  # noqa: E402

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HISTORY_SPANS = (1, 2, 3, 4)
NEW_SPAN = 5
# The shift of the later period.
FARE_FACTOR = 1.6
TRIP_FACTOR = 1.4
MISSING_COORDINATES_SHARE = 0.6
MOBILE_SHARE_OF_CREDIT_CARD = 0.3
CREDIT_CARD = "Credit Card"
MOBILE = "Mobile"
# Companies whose trips run under a new name in the later period (29% of the shipped trips).
RENAMED_COMPANIES: Dict[str, str] = {
    "Dispatch Taxi Affiliation": "Flash Cab",
    "Blue Ribbon Taxi Association Inc.": "Sun Taxi",
    "Choice Taxi Association": "City Service",
    "Northwest Management LLC": "Medallion Leasing",
    "KOAM Taxi Association": "Star North Management LLC",
}
NEW_SPAN_YEAR = 2017
HOLDOUT_YEAR = 2018
NEW_SPAN_ROWS = 5000
HOLDOUT_ROWS = 3000
# The columns the shift changes besides those pipeline.data_tools.synthetic_data and modules.features name.
COMPANY_KEY = "company"
PAYMENT_KEY = "payment_type"
MONTH_KEY = "trip_start_month"
WEEK_SECONDS = 7 * 86400
ACCEPT_REASON = (
    "adaptation benchmark: a synthetic later period (fares x1.6, trips x1.4, coordinates often empty, "
    "new companies, Mobile payments); reviewed as the new normal"
)
# Lines of a refusal's message shown, besides its last (the accept command).
SHOWN_LINES = 3
HOLDOUT_NAME = "shifted held-out"
BOOTSTRAP_RESAMPLES = 1000


@dataclasses.dataclass
class TrainedModel:
    """One model to score: its name, the spans it learned from, and how it scores trips."""

    name: str
    # The data root and spans it learned from; trees are trained on those spans' CSVs.
    data_root: str
    spans: Tuple[int, ...]
    saved_model_dir: Optional[str] = None  # a pipeline model; None for the trees

    @property
    def spans_text(self) -> str:
        return f"{self.spans[0]}-{self.spans[-1]}" if len(self.spans) > 1 else str(self.spans[0])


def _cells(values: pd.Series, decimals: int) -> np.ndarray:
    """Numbers as CSV cells with fixed decimals, "" where missing."""
    return np.array(["" if pd.isna(value) else f"{value:.{decimals}f}" for value in values], dtype=object)


def _numbers(cells: np.ndarray) -> pd.Series:
    return pd.to_numeric(pd.Series(cells), errors="coerce")


def shipped_trips(data_root: str, spans: Sequence[int]) -> SpanSource:
    """Every trip of the given spans as one source, with each trip's label in LABEL_KEY."""
    sources = [read_span(data_root, span) for span in spans]
    header = sources[0].header
    columns = {key: np.concatenate([source.columns[key] for source in sources]) for key in header}
    frame = pd.DataFrame({key: _numbers(columns[key]) for key in (features.FARE_KEY, features.TIPS_KEY)})
    # Carried through the draw like any other column (synthesize copies every column it does
    # not jitter), so the shift can keep each drawn trip's label exactly.
    columns[features.LABEL_KEY] = labels(frame).astype(bool)
    return SpanSource(span=0, header=header, columns=columns)


def subset(source: SpanSource, rows: np.ndarray) -> SpanSource:
    """The given rows of a source."""
    return SpanSource(span=source.span, header=source.header, columns={key: cells[rows] for key, cells in source.columns.items()})


def _moved_to_year(timestamps: pd.Series, year: int) -> pd.Series:
    """Start times moved by whole weeks into `year`: the hour and the day of the week stay."""
    source_years = timestamps.astype("int64").astype("datetime64[s]").dt.year
    weeks = np.round((year - source_years) * 365.2425 / 7)
    moved = timestamps + weeks * WEEK_SECONDS
    for _ in range(3):  # a trip near New Year can land a week outside the year
        moved_years = moved.astype("int64").astype("datetime64[s]").dt.year
        moved = moved - (moved_years > year) * WEEK_SECONDS + (moved_years < year) * WEEK_SECONDS
    return moved


def _with_label(tips_cents: pd.Series, fare_cents: pd.Series, label: np.ndarray) -> pd.Series:
    """Tips moved by the fewest cents that give each trip `label` on its (scaled) fare."""
    big = features.is_big_tip(tips_cents.fillna(0), fare_cents).to_numpy()
    smallest_big_tip = fare_cents // (100 // features.BIG_TIP_PERCENT) + 1
    fixed = tips_cents.copy()
    too_small = label & ~big & fare_cents.notna().to_numpy()
    too_big = ~label & big & fare_cents.notna().to_numpy()
    fixed[too_small] = smallest_big_tip[too_small]
    fixed[too_big] = smallest_big_tip[too_big] - 1
    return fixed


def shift_period(columns: Dict[str, np.ndarray], year: int, rng: np.random.Generator) -> Dict[str, np.ndarray]:
    """Applies the later period's shift (module docstring) to drawn trips; returns CSV cells."""
    columns = dict(columns)
    label = np.asarray(columns.pop(features.LABEL_KEY), dtype=bool)
    rows = len(label)
    fare = (_numbers(columns[features.FARE_KEY]) * FARE_FACTOR).clip(upper=UPPER_BOUNDS[features.FARE_KEY])
    # A tip is a share of the fare: it rises with it. The cents are then set so the label is
    # the drawn trip's: rounding a scaled tip and fare can move a tip of about 20% across
    # the line (and pipeline.data_tools.synthetic_data's own rounding can too).
    tips = (_numbers(columns[features.TIPS_KEY]) * FARE_FACTOR).clip(upper=UPPER_BOUNDS[features.TIPS_KEY])
    fare_cents, tips_cents = features.cents(fare), features.cents(tips)
    tips_cents = _with_label(tips_cents, fare_cents, label)
    columns[features.FARE_KEY] = _cells(fare_cents / 100, 2)
    columns[features.TIPS_KEY] = _cells(tips_cents / 100, 2)
    miles = (_numbers(columns[MILES_KEY]) * TRIP_FACTOR).clip(upper=UPPER_BOUNDS[MILES_KEY])
    seconds = (_numbers(columns[SECONDS_KEY]) * TRIP_FACTOR).clip(upper=UPPER_BOUNDS[SECONDS_KEY]).round()
    columns[MILES_KEY] = _cells(miles, 2)
    columns[SECONDS_KEY] = _cells(seconds, 0)
    moved = _moved_to_year(_numbers(columns[features.TIMESTAMP_KEY]), year)
    columns[features.TIMESTAMP_KEY] = _cells(moved, 0)
    columns[MONTH_KEY] = _cells(moved.astype("int64").astype("datetime64[s]").dt.month, 0)
    no_coordinates = rng.random(rows) < MISSING_COORDINATES_SHARE
    for key in features.COORDINATE_FEATURE_KEYS:
        columns[key] = np.where(no_coordinates, "", columns[key]).astype(object)
    columns[COMPANY_KEY] = np.array([RENAMED_COMPANIES.get(name, name) for name in columns[COMPANY_KEY]], dtype=object)
    mobile = (columns[PAYMENT_KEY] == CREDIT_CARD) & (rng.random(rows) < MOBILE_SHARE_OF_CREDIT_CARD)
    columns[PAYMENT_KEY] = np.where(mobile, MOBILE, columns[PAYMENT_KEY]).astype(object)
    return columns


def write_csv(path: str, header: List[str], columns: Dict[str, np.ndarray]) -> str:
    """Writes the columns as a CSV file with the shipped header; returns the path."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", newline="") as data_file:
        writer = csv.writer(data_file, lineterminator="\n")
        writer.writerow(header)
        writer.writerows(zip(*(columns[key] for key in header)))
    return path


@dataclasses.dataclass(frozen=True)
class Period:
    """The benchmark's data: the data root, the shifted period's files, and where each came from."""

    data_root: str
    new_span_file: str
    holdout_file: str
    # Rows of the shipped spans 1-4 (in span order) that span 5's trips and the held-out trips
    # were drawn from: two disjoint halves.
    new_span_sources: np.ndarray
    holdout_sources: np.ndarray


def build_period(output_dir: str, seed: int) -> Period:
    """Writes the history data root, span 5 (staged, not yet in the data root) and the held-out trips."""
    data_root = os.path.join(output_dir, "data")
    for span in HISTORY_SPANS:
        name = f"{configs.SPAN_FOLDER_PREFIX}{span}"
        shutil.copytree(os.path.join(REPO_DATA_ROOT, name), os.path.join(data_root, name))
    source = shipped_trips(REPO_DATA_ROOT, HISTORY_SPANS)
    seen_companies = set(source.columns[COMPANY_KEY])
    if seen_companies & set(RENAMED_COMPANIES.values()):
        raise ValueError(f"a new company name is in the shipped spans: {sorted(seen_companies & set(RENAMED_COMPANIES.values()))}")
    # Two disjoint halves of the shipped trips: span 5 and the held-out trips share no source trip.
    order = np.random.default_rng([seed, 0]).permutation(source.row_count)
    halves = (np.sort(order[: source.row_count // 2]), np.sort(order[source.row_count // 2 :]))
    files = []
    for rows_from, rows, year, stream, name in (
        (halves[0], NEW_SPAN_ROWS, NEW_SPAN_YEAR, 1, "new-span/data.csv"),
        (halves[1], HOLDOUT_ROWS, HOLDOUT_YEAR, 2, "holdout/data.csv"),
    ):
        rng = np.random.default_rng([seed, stream])
        drawn = synthesize(subset(source, rows_from), rows, rng)
        shifted = shift_period(drawn, year, rng)
        path = write_csv(os.path.join(output_dir, name), source.header, shifted)
        kept = (labels(pd.read_csv(path)) == np.asarray(drawn[features.LABEL_KEY], dtype=int)).mean()
        if kept != 1.0:
            raise ValueError(f"{path}: {1 - kept:.2%} of trips lost the label of the shipped trip they were drawn from")
        files.append(path)
    if len(_frame(_span_csvs(data_root, HISTORY_SPANS))) != source.row_count:
        raise ValueError(f"{data_root}: pandas and pipeline.data_tools.synthetic_data read different trip counts from spans 1-4")
    return Period(data_root, files[0], files[1], halves[0], halves[1])


def write_history(data_root: str, left_out_rows: np.ndarray) -> None:
    """Writes spans 1-4 as shipped less the given trips (rows in span order) under `data_root`."""
    offset = 0
    for span in HISTORY_SPANS:
        source = read_span(REPO_DATA_ROOT, span)
        kept = np.setdiff1d(np.arange(source.row_count), left_out_rows - offset)
        folder = os.path.join(data_root, f"{configs.SPAN_FOLDER_PREFIX}{span}")
        write_csv(os.path.join(folder, "data.csv"), source.header, subset(source, kept).columns)
        offset += source.row_count


def _shortened(text: str, count: int = SHOWN_LINES) -> str:
    """The first `count` lines of a message and its last line, indented."""
    lines = (text or "").strip().splitlines()
    if len(lines) > count + 1:
        lines = lines[:count] + [f"... ({len(lines) - count - 1} more lines)", lines[-1]]
    return "\n".join(f"    {line}" for line in lines)


def _accepted_summary(accept_output: str) -> str:
    """The accept command's first line, how many findings it accepted, and the drift among them."""
    lines = accept_output.strip().splitlines()
    findings = [line.strip()[2:] for line in lines if line.startswith("  - ")]
    # Schema findings name a feature in quotes; drift findings are "column measure score > threshold".
    drift = [finding for finding in findings if "feature '" not in finding]
    shown = [lines[0] if lines else "", f"{len(findings)} findings accepted, {len(findings) - len(drift)} of them schema anomalies; drift:"]
    shown += [f"  {finding}" for finding in drift] or ["  none"]
    return "\n".join(f"    {line}" for line in shown)


def _decision(result: RunResult) -> str:
    """The run's blessing and push, and its eval-split metrics next to the serving model's, in one line."""
    summary = result.summary
    auc, baseline_auc = summary.metrics.get("auc", (None, None))
    metrics = f"eval-split AUC {auc:.4f}" if auc is not None else "no evaluation"
    if baseline_auc is not None:
        metrics += f" (serving model {baseline_auc:.4f})"
    blessed = {None: "not evaluated", True: "blessed", False: "NOT blessed"}[summary.blessed]
    failures = f" ({'; '.join(summary.failed_thresholds)})" if summary.failed_thresholds else ""
    if summary.pushed_version:
        pushed = f"pushed as version {summary.pushed_version}"
    elif summary.already_serving_version:
        pushed = f"not pushed (already serving as version {summary.already_serving_version})"
    else:
        pushed = "not pushed"
    return f"spans {summary.spans}: {metrics}; {blessed}{failures}; {pushed}; {result.seconds:.0f}s"


def _run(paths: LocalPaths, options: configs.PipelineOptions, handler) -> RunResult:
    result = run_once(paths, options, local_beam_args("in_memory"), handler)
    if result.exit_code not in (EXIT_OK, EXIT_DATA_REFUSED):
        raise RuntimeError(f"pipeline run into {paths.output_dir} failed: {result.error}")
    return result


def accept_span(paths: LocalPaths, span: int) -> None:
    """Runs `python -m pipeline.accept` for the refused span, as an owner would."""
    command = [
        sys.executable, "-m", "pipeline.ops.accept",
        "--data-root", paths.data_root, "--output-dir", paths.output_dir,
        "--span", str(span), "--reason", ACCEPT_REASON,
    ]  # fmt: skip
    completed = subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True, check=False)
    print(f"  python -m pipeline.accept --span {span} ...: exit code {completed.returncode}")
    print(_accepted_summary(completed.stdout) if completed.returncode == 0 else _shortened(completed.stderr))
    if completed.returncode != 0:
        raise RuntimeError(f"pipeline.ops.accept refused span {span} in {paths.output_dir}:\n{completed.stderr}")


def run_with_new_span(paths: LocalPaths, options: configs.PipelineOptions, handler) -> RunResult:
    """Runs on the data root with span 5: expects the refusal, accepts the span, runs again."""
    refused = _run(paths, options, handler)
    if refused.exit_code == EXIT_DATA_REFUSED:
        print(f"  refused ({refused.seconds:.0f}s), first lines of the message:")
        print(_shortened(refused.error))
        accept_span(paths, NEW_SPAN)
        result = _run(paths, options, handler)
    else:
        print("  not refused: span 5 passed the data checks")
        result = refused
    if result.exit_code != EXIT_OK or result.summary is None or result.summary.model_uri is None:
        raise RuntimeError(f"no model trained in {paths.output_dir}: {result.error}")
    print(f"  {_decision(result)}")
    return result


def _frame(paths: Sequence[str]) -> pd.DataFrame:
    return pd.concat([pd.read_csv(path) for path in paths], ignore_index=True)


def _span_csvs(data_root: str, spans: Sequence[int]) -> List[str]:
    paths = []
    for span in spans:
        folder = os.path.join(data_root, f"{configs.SPAN_FOLDER_PREFIX}{span}")
        paths.extend(os.path.join(folder, name) for name in sorted(os.listdir(folder)) if name.endswith(".csv"))
    return paths


def _auc(truth: np.ndarray, scores: np.ndarray) -> float:
    return roc_auc_score(truth, scores) if np.ptp(scores) > 0 else 0.5


def model_scores(models: List[TrainedModel], scored: Dict[str, pd.DataFrame]) -> List[Dict[str, np.ndarray]]:
    """P(big tipper) of every trip of each scored set, per model (pipeline models through their
    serving signature, trees trained on the CSVs of the model's spans)."""
    all_scores = []
    for model in models:
        if model.saved_model_dir is not None:
            all_scores.append({name: saved_model_scores(model.saved_model_dir, frame) for name, frame in scored.items()})
        else:
            train = _frame(_span_csvs(model.data_root, model.spans))
            all_scores.append({name: boosted_scores(train, frame) for name, frame in scored.items()})
    return all_scores


def print_table(models: List[TrainedModel], all_scores: List[Dict[str, np.ndarray]], scored: Dict[str, pd.DataFrame]) -> None:
    """Prints AUC and accuracy of every model, the rule and the majority answer as a Markdown table."""
    truths = {name: labels(frame) for name, frame in scored.items()}
    for name, frame in scored.items():
        print(f"{name}: {len(frame)} trips, {truths[name].mean():.1%} big tippers")
    header = ["model", "spans", "trips in those spans"]
    for name in scored:
        header += [f"{name} AUC", f"{name} accuracy"]
    print("| " + " | ".join(header) + " |")
    print("|" + " --- |" * len(header))
    baselines = [
        ("rule: payment_type is Credit Card", {name: credit_card_rule(frame) for name, frame in scored.items()}),
        ("always 'not a big tipper'", {name: np.zeros(len(frame)) for name, frame in scored.items()}),
    ]
    rows = [
        (model.name, model.spans_text, str(len(_frame(_span_csvs(model.data_root, model.spans)))), scores)
        for model, scores in zip(models, all_scores)
    ]
    rows += [(name, "-", "-", scores) for name, scores in baselines]
    for name, spans, trips, scores in rows:
        cells = [name, spans, trips]
        for set_name, truth in truths.items():
            cells += [f"{_auc(truth, scores[set_name]):.4f}", f"{accuracy_score(truth, scores[set_name] > 0.5):.4f}"]
        print("| " + " | ".join(cells) + " |")


def auc_difference(truth: np.ndarray, scores: np.ndarray, reference_scores: np.ndarray, seed: int = 0) -> Tuple[float, float, float]:
    """AUC of `scores` less AUC of `reference_scores` on the same trips, with a 95% interval
    from BOOTSTRAP_RESAMPLES paired bootstrap resamples of the trips."""
    rng = np.random.default_rng(seed)
    differences = []
    for _ in range(BOOTSTRAP_RESAMPLES):
        rows = rng.integers(0, len(truth), size=len(truth))
        differences.append(_auc(truth[rows], scores[rows]) - _auc(truth[rows], reference_scores[rows]))
    low, high = np.percentile(differences, [2.5, 97.5])
    return _auc(truth, scores) - _auc(truth, reference_scores), float(low), float(high)


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output-dir", required=True, help="where the data and the runs are written (emptied first)")
    parser.add_argument(
        "--span-windows",
        type=int,
        nargs="+",
        default=[2, 1],
        help="windows of the newest K spans to retrain on, each in a fresh output dir (default: 2 1)",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the shifted period's draws (default: 0)")
    return parser.parse_args(argv)


def _add_new_span(data_root: str, period: Period) -> None:
    folder = os.path.join(data_root, f"{configs.SPAN_FOLDER_PREFIX}{NEW_SPAN}")
    os.makedirs(folder)
    shutil.copy(period.new_span_file, os.path.join(folder, "data.csv"))


def _saved_model(result: RunResult) -> str:
    return os.path.join(result.summary.model_uri, "Format-Serving")


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Builds the period, runs the pipeline, prints the table; returns the exit code."""
    args = parse_args(argv)
    started = time.monotonic()
    output_dir = os.path.abspath(args.output_dir)
    shutil.rmtree(output_dir, ignore_errors=True)
    period = build_period(output_dir, args.seed)
    data_root = period.data_root
    print(f"data root {data_root}: spans {HISTORY_SPANS[0]}-{HISTORY_SPANS[-1]} as shipped")
    print(f"span {NEW_SPAN} (staged): {period.new_span_file}; held-out trips of the shifted period: {period.holdout_file}")
    handler = progress.install(quiet=True)
    # The DataGate logs every accepted finding again on each run; the accept step prints them once.
    logging.getLogger("pipeline.components.data_gate").setLevel(logging.ERROR)
    import tensorflow as tf

    tf.get_logger().setLevel("ERROR")
    options = configs.PipelineOptions(
        module_fingerprint=module_fingerprint(), code_fingerprint=project_fingerprint(), external_tables=resolve_sources()
    )
    all_spans = LocalPaths(data_root=data_root, output_dir=os.path.join(output_dir, "all-spans"))
    print(f"\n[1] spans 1-4 into {all_spans.output_dir}")
    serving = _run(all_spans, options, handler)
    if serving.exit_code != EXIT_OK or serving.summary.model_uri is None:
        print(f"the history run trained nothing: {serving.error}", file=sys.stderr)
        return 1
    print(f"  {_decision(serving)}")
    models = [
        TrainedModel("serving model (pipeline)", data_root, HISTORY_SPANS, _saved_model(serving)),
        TrainedModel("gradient-boosted trees", data_root, HISTORY_SPANS),
    ]
    # AUC differences on the held-out trips: (model, reference model) by index into `models`.
    comparisons: List[Tuple[int, int]] = []

    _add_new_span(data_root, period)
    new_spans = tuple(range(1, NEW_SPAN + 1))
    print(f"\n[2] span {NEW_SPAN} arrives: spans 1-{NEW_SPAN} into {all_spans.output_dir}")
    retrained = run_with_new_span(all_spans, options, handler)
    models.append(TrainedModel("retrained, all spans (pipeline)", data_root, new_spans, _saved_model(retrained)))
    models.append(TrainedModel("gradient-boosted trees", data_root, new_spans))
    comparisons += [(2, 0), (2, 3)]

    for span_window in args.span_windows:
        paths = LocalPaths(data_root=data_root, output_dir=os.path.join(output_dir, f"window-{span_window}"))
        window_spans = new_spans[-span_window:]
        print(f"\n[3] span_window={span_window} (spans {window_spans[0]}-{window_spans[-1]}) into a fresh {paths.output_dir}")
        windowed = run_with_new_span(paths, dataclasses.replace(options, span_window=span_window), handler)
        models.append(TrainedModel(f"retrained, newest {span_window} (pipeline)", data_root, window_spans, _saved_model(windowed)))
        models.append(TrainedModel("gradient-boosted trees", data_root, window_spans))
        comparisons += [(len(models) - 2, 0), (len(models) - 2, 2), (len(models) - 2, len(models) - 1)]

    # The held-out trips are shifted copies of trips that spans 1-4 hold, so a model trained on
    # spans 1-4 has seen their originals. Two more data roots measure what that is worth: the
    # history less the held-out trips' sources (no model there saw an original), and, as many
    # trips, less span 5's sources (as much data, originals seen).
    less_roots = {}
    for slug, label, left_out in (
        ("less-holdout-sources", "less the held-out trips' sources", period.holdout_sources),
        ("less-new-span-sources", "less span 5's sources", period.new_span_sources),
    ):
        root = os.path.join(output_dir, f"data-{slug}")
        write_history(root, left_out)
        _add_new_span(root, period)
        paths = LocalPaths(data_root=root, output_dir=os.path.join(output_dir, f"all-spans-{slug}"))
        print(f"\n[4] spans 1-5, the history {label}, into a fresh {paths.output_dir}")
        result = run_with_new_span(paths, options, handler)
        models.append(TrainedModel(f"retrained, all spans, history {label} (pipeline)", root, new_spans, _saved_model(result)))
        models.append(TrainedModel(f"gradient-boosted trees, history {label}", root, new_spans))
        less_roots[slug] = len(models) - 2
    pipeline_leak_free, trees_leak_free = less_roots["less-holdout-sources"], less_roots["less-holdout-sources"] + 1
    comparisons += [
        (less_roots["less-new-span-sources"], pipeline_leak_free),
        (less_roots["less-new-span-sources"] + 1, trees_leak_free),
        (pipeline_leak_free, 0),
        (pipeline_leak_free, trees_leak_free),
    ]
    comparisons += [(index, pipeline_leak_free) for index, model in enumerate(models) if model.name.startswith("retrained, newest")]

    scored = {HOLDOUT_NAME: pd.read_csv(period.holdout_file), "shipped span 4": _frame(_span_csvs(REPO_DATA_ROOT, [4]))}
    all_scores = model_scores(models, scored)
    print(
        "\nscores: pipeline models through their serving signature (trained on ExampleGen's train split, 4 of 5 "
        "hash buckets of the spans' trips); trees on the raw columns of every trip of the same spans' CSVs"
    )
    print_table(models, all_scores, scored)
    truth = labels(scored[HOLDOUT_NAME])
    print(f"\n{HOLDOUT_NAME} AUC differences, with 95% paired bootstrap intervals ({BOOTSTRAP_RESAMPLES} resamples of its trips):")
    for index, reference in comparisons:
        difference, low, high = auc_difference(truth, all_scores[index][HOLDOUT_NAME], all_scores[reference][HOLDOUT_NAME])
        print(
            f"  {models[index].name} {models[index].spans_text} - {models[reference].name} {models[reference].spans_text}: "
            f"{difference:+.4f} [{low:+.4f}, {high:+.4f}]"
        )
    print(f"\ntotal time: {time.monotonic() - started:.0f}s")
    return 0


if __name__ == "__main__":
    exit_code = main()
    # As run_local.py: skip the interpreter teardown's pages of harmless TensorFlow finalizer errors.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(exit_code)
