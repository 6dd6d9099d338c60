"""Exports the US and Illinois public holiday calendar as a versioned external table.

The `holidays` package carries its calendars; nothing is downloaded. One row per calendar
day of the chosen years (so a date missing from the table means "outside the table", never
"not a holiday"), with the columns of `modules.external.HOLIDAYS`. Observed days (a holiday
falling on a weekend, observed on the Friday or Monday) count as holidays.

    python -m pipeline export-holidays --version v1
        -> data/external/us_il_holidays/v1/holidays.csv and SOURCE.json

A version folder, once written, is never changed: exporting different content into an
existing version is refused, so a model's lineage always points at the table it saw.
"""
import os

if __name__ == "__main__":
    # Before TensorFlow is imported (modules.external imports it): keep start-up notices quiet.
    from serving.console import import_tensorflow

    import_tensorflow()

import argparse  # noqa: E402
import csv  # noqa: E402
import datetime  # noqa: E402
import hashlib  # noqa: E402
import io  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
from typing import List, Optional  # noqa: E402

from modules import external  # noqa: E402

TABLE_FILE = "holidays.csv"
SOURCE_FILE = "SOURCE.json"
COUNTRY = "US"
SUBDIVISION = "IL"
DEFAULT_FIRST_YEAR = 2012
DEFAULT_LAST_YEAR = 2030


def holiday_rows(first_year: int, last_year: int) -> List[list]:
    """Returns the table's rows, header first, one row per day from first_year to last_year."""
    import holidays

    calendar = holidays.country_holidays(COUNTRY, subdiv=SUBDIVISION, years=range(first_year, last_year + 2))
    rows = [external.HOLIDAYS.header]
    day = datetime.date(first_year, 1, 1)
    while day.year <= last_year:
        next_day = day + datetime.timedelta(days=1)
        rows.append(
            [
                day.isoformat(),
                day.weekday(),
                int(day in calendar),
                int(next_day in calendar),
                calendar.get(day) or "",
            ]
        )
        day = next_day
    return rows


def table_text(rows: List[list]) -> str:
    """Writes rows as CSV text with Unix line endings."""
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerows(rows)
    return buffer.getvalue()


def export(output_root: str, version: str, first_year: int, last_year: int) -> str:
    """Writes the calendar into `<output_root>/<table>/<version>/` and returns the table's path.

    Raises:
        ValueError: when the years are reversed, or the version folder already holds a
            different table (versions are never overwritten).
    """
    import holidays

    if first_year > last_year:
        raise ValueError(f"first year {first_year} is after last year {last_year}")
    text = table_text(holiday_rows(first_year, last_year))
    # The export must be a table the pipeline accepts.
    external.parse_table(text, external.HOLIDAYS, "export")
    folder = os.path.join(output_root, external.HOLIDAYS.name, version)
    path = os.path.join(folder, TABLE_FILE)
    if os.path.exists(path):
        with open(path, encoding="utf-8") as existing:
            if existing.read() == text:
                return path
        raise ValueError(f"{path} already holds a different table; export into a new --version")
    os.makedirs(folder, exist_ok=True)
    source = {
        "table": external.HOLIDAYS.name,
        "source": f"python package holidays {holidays.__version__}",
        "country": COUNTRY,
        "subdivision": SUBDIVISION,
        "years": [first_year, last_year],
        "rows": text.count("\n") - 1,
        "sha256": hashlib.sha256(text.encode("utf-8")).hexdigest(),
        "command": f"python -m pipeline export-holidays --version {version} --first-year {first_year} --last-year {last_year}",
    }
    with open(path, "w", encoding="utf-8", newline="") as table_file:
        table_file.write(text)
    with open(os.path.join(folder, SOURCE_FILE), "w", encoding="utf-8") as source_file:
        json.dump(source, source_file, indent=2)
        source_file.write("\n")
    return path


def main(argv: Optional[List[str]] = None) -> int:
    """Parses arguments and exports; returns the exit code."""
    repo_root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    parser = argparse.ArgumentParser(prog="python -m pipeline export-holidays", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", required=True, help="version folder name, e.g. v2 (never overwritten)")
    parser.add_argument("--output-root", default=os.path.join(repo_root, "data", "external"), help="default: data/external")
    parser.add_argument("--first-year", type=int, default=DEFAULT_FIRST_YEAR)
    parser.add_argument("--last-year", type=int, default=DEFAULT_LAST_YEAR)
    args = parser.parse_args(argv)
    try:
        path = export(args.output_root, args.version, args.first_year, args.last_year)
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
