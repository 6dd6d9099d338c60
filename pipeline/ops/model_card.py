"""A model card for a pushed version, in Markdown and HTML, made from its lineage in ML Metadata.

    python -m pipeline lineage --output-dir outputs --card          # the serving version's card
    python -m pipeline lineage --output-dir outputs --version 1796117481 --card

The card lies next to the version it describes, in `serving_model/<version>/assets.extra/`
(`model_card.md`, `model_card.html`), so a copy of the version to a bucket or a volume carries
it; TF Serving reads nothing there but the warm-up file, and the Pusher's "already serving"
check leaves the card out of its comparison. `run_local.py` writes the card after each push;
`--card` writes it for any version ML Metadata knows (an Airflow or replayed run's too) and
prints where it is.

What it says: intended use and the label, the spans and files trained on with their
fingerprints, the external tables, the code fingerprints and hyperparameters, every check of the
gate with its threshold and baseline (the whole eval split, the card-paid slice, the newest span,
the trivial baselines), metrics by slice with the weakest named, known limitations, and the ids
of the ML Metadata records behind each statement. Everything is read from the record; nothing is
typed in by hand but the intended use and the limitations that follow from the data.
"""
import html
import json
import os
from typing import List, Sequence, Tuple, Union

import tensorflow as tf

from modules import features, signatures
from pipeline import configs
from pipeline.ops import run_summary
from pipeline.ops.lineage import Lineage
from pipeline.ops.report import count_text, number_text
from serving.versions import MODEL_CARD_FILES

CARD_MARKDOWN, CARD_HTML = (os.path.basename(path) for path in MODEL_CARD_FILES)

# A card is a list of sections; a section holds paragraphs, bullet lists and tables.
Paragraph = Tuple[str, str]
Bullets = Tuple[str, List[str]]
Table = Tuple[str, List[str], List[List[str]]]
Block = Union[Paragraph, Bullets, Table]
Section = Tuple[str, List[Block]]

INTENDED_USE = (
    "Scores a Chicago taxi trip with the probability that its tip exceeds "
    f"{features.BIG_TIP_PERCENT}% of the fare (a \"big tipper\"), from what is known when the trip ends: "
    "fare, distance, duration, time, place, company and payment type. Meant for aggregate uses such as "
    "ranking areas or hours by expected tipping; not for decisions about one driver or passenger."
)
LABEL_DEFINITION = (
    f"big_tipper = tips > {features.BIG_TIP_PERCENT}% of fare, compared in whole cents (a tip of exactly "
    f"{features.BIG_TIP_PERCENT}% is not big); a trip without a fare is labelled 0."
)


def card_dir(serving_model_dir: str, version: str) -> str:
    """Where a version's card lies: serving_model/<version>/assets.extra/."""
    return os.path.dirname(os.path.join(serving_model_dir, str(version), MODEL_CARD_FILES[0]))


def _limitations(lineage: Lineage) -> List[str]:
    slices = lineage.evaluation.slices if lineage.evaluation else {}
    cash = slices.get(f"{features.PAYMENT_TYPE_KEY}=Cash", {})
    card = slices.get(f"{features.PAYMENT_TYPE_KEY}={features.CARD_PAYMENT}", {})
    limits = [
        "Cash tips are not recorded in the data: a cash trip is almost never labelled a big tipper, so most of the "
        f"overall AUC separates cash from card (cash trips' mean label {number_text(cash.get('mean_label'))}). "
        f"Among card-paid trips, where tipping is observed, the AUC is {number_text(card.get('auc'))}.",
        "Pickup and dropoff coordinates and census tracts are sometimes absent (trips outside Chicago, or not "
        "recorded); the model reads an absent value as its own category, and such trips are scored on the rest.",
        "Trained on the spans listed below only: trips of other years, other fare rules or new companies may be "
        "scored worse; the pipeline's drift check compares each new span with the ones before it.",
    ]
    return limits


def _evaluation_blocks(lineage: Lineage) -> List[Block]:
    evaluation = lineage.evaluation
    if evaluation is None:
        return [("p", "No evaluation is recorded for this version.")]
    blocks: List[Block] = []
    baseline = evaluation.baseline_model
    if baseline is not None:
        versions = ", ".join(evaluation.baseline_versions) or "not pushed"
        blocks.append(("p", f"Compared with the model serving at the time: Model #{baseline.id} (serving version {versions})."))
    else:
        blocks.append(("p", "Compared with no earlier model: no version was serving when this one was evaluated."))
    rows = [
        [name, number_text(candidate), number_text(compared), evaluation.thresholds.get(name, "")]
        for name, (candidate, compared) in sorted(evaluation.metrics.items())
    ]
    rows += [[check, number_text(candidate), number_text(compared), rule] for check, candidate, compared, rule in run_summary.gate_rows(evaluation.gate)]
    blocks.append(("table", ["check (whole eval split unless named)", "this model", "compared with", "rule"], rows))
    failures = evaluation.gate["failures"] if evaluation.gate else evaluation.failed_thresholds
    if failures:
        blocks.append(("ul", [f"failed: {failure}" for failure in failures]))
    slice_rows = [
        [label, count_text(values.get("example_count")), number_text(values.get("auc")), number_text(values.get("binary_accuracy"))]
        for label, values in sorted(evaluation.slices.items())
    ]
    if slice_rows:
        blocks.append(("table", ["slice", "trips", "AUC", "accuracy"], slice_rows))
    weakest = sorted(
        (values["auc"], label)
        for label, values in evaluation.slices.items()
        if values.get("auc") is not None and values.get("auc") == values.get("auc")
        and values.get("example_count", 0) >= run_summary.MIN_SLICE_EXAMPLES
    )[:3]
    if weakest:
        blocks.append(
            ("p", f"Weakest slices by AUC (at least {run_summary.MIN_SLICE_EXAMPLES} trips): " + "; ".join(f"{label} {auc:.3f}" for auc, label in weakest))
        )
    return blocks


def card_sections(lineage: Lineage) -> Tuple[str, List[Section]]:
    """The card's title and sections, from a version's lineage."""
    push = lineage.push
    title = f"Model card: {configs.SERVING_MODEL_NAME}, version {lineage.version}"
    details: List[Block] = [
        (
            "ul",
            [
                f"pushed {push.pushed_at_utc} to {push.destination}",
                f"decision: {'blessed' if lineage.blessed else 'NOT blessed'}; serving check: "
                f"{'loads and answers' if lineage.serves else 'not passed' if lineage.serves is False else 'not recorded'}",
                f"signatures: {signatures.SERVING_DEFAULT} (raw columns by name), {signatures.SERVING_TF_EXAMPLE} "
                f"(serialized tf.Examples), {signatures.TRANSFORM_FEATURES}, {signatures.TRANSFORM_LABEL}; output {signatures.PROBABILITY_OUTPUT}",
            ],
        )
    ]
    use: List[Block] = [("p", INTENDED_USE), ("p", f"Label: {LABEL_DEFINITION}")]
    data_blocks: List[Block] = []
    if lineage.data is not None:
        data_blocks.append(("p", f"Spans {', '.join(str(span) for span in lineage.data.spans)} (Examples #{lineage.data.examples.id})."))
        data_blocks.append(("table", ["file", "sha256 at ingestion", "on disk now"], [[f.path, f.sha256, f.status_now] for f in lineage.data.files]))
        for record in lineage.data.acceptances:
            data_blocks.append(("p", f"Span {record['span']} accepted after review by {record['accepted_by']} at {record['accepted_at']}: {record['reason']}"))
    if lineage.external_tables is not None:
        data_blocks.append(
            (
                "table",
                ["external table", "source", "sha256", "rows", "keys"],
                [
                    [name, str(record["source_uri"]), str(record["sha256"]), str(record["rows"]), f"{record['first_key']} .. {record['last_key']}"]
                    for name, record in sorted(lineage.external_tables.records.items())
                ],
            )
        )
    if lineage.schema is not None:
        data_blocks.append(("p", f"Schema {lineage.schema.schema_file}, sha256 {lineage.schema.sha256 or 'file missing'}."))
    training: List[Block] = []
    if lineage.trainer is not None:
        trainer = lineage.trainer
        hyperparameters = json.dumps(trainer.hyperparameters, sort_keys=True) if trainer.hyperparameters else "the defaults of modules/hparams.py"
        if trainer.tuned_hyperparameters is not None:
            hyperparameters += f"; the Tuner's best values on top: {json.dumps(trainer.tuned_hyperparameters, sort_keys=True)}"
        training.append(
            (
                "ul",
                [
                    f"run_fn {trainer.run_fn}: {trainer.train_steps} train steps, {trainer.eval_steps} eval steps",
                    f"hyperparameters: {hyperparameters}",
                    f"module code fingerprint (modules/): {trainer.module_fingerprint or '-'}",
                ]
                + ([f"preprocessing_fn {lineage.transform.preprocessing_fn}"] if lineage.transform else []),
            )
        )
    records = [
        ["PushedModel", str(push.pushed_model.id), push.pushed_model.uri],
        *([["ModelBlessing", str(lineage.blessing.id), lineage.blessing.uri]] if lineage.blessing else []),
        *([["ModelEvaluation", str(lineage.evaluation.evaluation.id), lineage.evaluation.evaluation.uri]] if lineage.evaluation else []),
        *([["Model", str(lineage.trainer.model.id), lineage.trainer.model.uri]] if lineage.trainer else []),
        *([["TransformGraph", str(lineage.transform.transform_graph.id), lineage.transform.transform_graph.uri]] if lineage.transform else []),
        *([["Examples", str(lineage.data.examples.id), lineage.data.examples.uri]] if lineage.data else []),
    ]
    lineage_blocks: List[Block] = [
        ("p", f"ML Metadata: {lineage.metadata_path}. `python -m pipeline lineage --version {lineage.version}` prints the whole record."),
        ("table", ["artifact", "id", "uri"], records),
        ("p", "Executions: " + ", ".join(f"#{execution_id}" for execution_id in lineage.execution_ids)),
    ]
    sections: List[Section] = [
        ("Model details", details),
        ("Intended use", use),
        ("Training data", data_blocks or [("p", "No data lineage is recorded.")]),
        ("Code and training", training or [("p", "No training record.")]),
        ("Evaluation (trips the model never trained on)", _evaluation_blocks(lineage)),
        ("Known limitations", [("ul", _limitations(lineage))]),
        ("Lineage", lineage_blocks),
    ]
    return title, sections


def _markdown_cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def render_markdown(title: str, sections: Sequence[Section]) -> str:
    """The card as Markdown."""
    lines = [f"# {title}", ""]
    for heading, blocks in sections:
        lines += [f"## {heading}", ""]
        for block in blocks:
            if block[0] == "p":
                lines += [block[1], ""]
            elif block[0] == "ul":
                lines += [f"- {item}" for item in block[1]] + [""]
            else:
                _, headers, rows = block
                lines.append("| " + " | ".join(_markdown_cell(h) for h in headers) + " |")
                lines.append("|" + " --- |" * len(headers))
                lines += ["| " + " | ".join(_markdown_cell(cell) for cell in row) + " |" for row in rows]
                lines.append("")
    return "\n".join(lines)


def render_html(title: str, sections: Sequence[Section]) -> str:
    """The card as one self-contained HTML page (no script, nothing loaded)."""
    escape = html.escape
    parts = [
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">",
        f"<title>{escape(title)}</title><style>",
        "body{font-family:system-ui,sans-serif;margin:2em;max-width:72em;color:#222}"
        "table{border-collapse:collapse;margin:.5em 0 1em}td,th{border:1px solid #bbb;padding:.25em .6em;text-align:left}"
        "th{background:#eef}h2{border-bottom:2px solid #88a;margin-top:1.6em}li{margin:.2em 0}",
        "</style></head><body>",
        f"<h1 id=\"title\">{escape(title)}</h1>",
    ]
    for heading, blocks in sections:
        parts.append(f"<h2>{escape(heading)}</h2>")
        for block in blocks:
            if block[0] == "p":
                parts.append(f"<p>{escape(block[1])}</p>")
            elif block[0] == "ul":
                parts.append("<ul>" + "".join(f"<li>{escape(item)}</li>" for item in block[1]) + "</ul>")
            else:
                _, headers, rows = block
                head = "".join(f"<th>{escape(h)}</th>" for h in headers)
                body = "".join("<tr>" + "".join(f"<td>{escape(str(cell))}</td>" for cell in row) + "</tr>" for row in rows)
                parts.append(f"<table><tr>{head}</tr>{body}</table>")
    parts.append("</body></html>")
    return "".join(parts)


def write_card(lineage: Lineage, serving_model_dir: str) -> Tuple[str, str]:
    """Writes a version's card (Markdown, HTML) into serving_model/<version>/assets.extra/ and
    returns the two paths. Each file is written whole, then renamed, so a reader never sees half."""
    title, sections = card_sections(lineage)
    folder = card_dir(serving_model_dir, lineage.version)
    tf.io.gfile.makedirs(folder)
    paths = []
    for name, text in ((CARD_MARKDOWN, render_markdown(title, sections)), (CARD_HTML, render_html(title, sections))):
        path = os.path.join(folder, name)
        with tf.io.gfile.GFile(path + ".tmp", "w") as card_file:
            card_file.write(text)
        tf.io.gfile.rename(path + ".tmp", path, overwrite=True)
        paths.append(path)
    return paths[0], paths[1]
