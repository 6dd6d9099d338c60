"""`pipeline.validation.code_scope`: the project files a computation imports, read from source."""
import pathlib
import shutil

import pytest

from pipeline.components import example_gen
from pipeline.validation import code_scope


def _write(root: pathlib.Path, files):
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


PROJECT = {
    "pipeline/__init__.py": "",
    "pipeline/reader.py": (
        "import numpy\nfrom pipeline import helpers, settings\n\n\n"
        "def read():\n    from modules.tables import TABLE\n    return TABLE, helpers.rows(), helpers.Z, settings.SEPARATOR\n"
    ),
    "pipeline/helpers.py": "from .sub import parts\nfrom .helpers_of_parts import Z\n\n\ndef rows():\n    return parts.Y\n\n\ndef unused():\n    return 0\n",
    "pipeline/sub/__init__.py": "from . import parts\nfrom typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from pipeline import trainer\n",
    "pipeline/sub/parts.py": "from ..helpers_of_parts import X\nY = X + 1\n",
    "pipeline/helpers_of_parts.py": "X = 1\nZ = 5\n",
    "pipeline/settings.py": (
        'import dataclasses\n\nSEPARATOR = ","\nTHRESHOLD = 0.9\n\n\n'
        "@dataclasses.dataclass(frozen=True)\nclass Thresholds:\n    floor: float = THRESHOLD\n"
    ),
    "pipeline/trainer.py": "from pipeline import reader\n",
    "modules/__init__.py": "",
    "modules/tables.py": "TABLE = {}\n",
    "modules/train.py": "",
}


def _names(paths, root):
    return sorted(str(path.relative_to(root)) for path in paths)


def _fingerprint(tmp_path, name, *changes):
    """The fingerprint of pipeline.reader in a copy of PROJECT with `changes` made in turn,
    each {path: text} or {path: (old, new)} to replace in the file."""
    files = dict(PROJECT)
    for change in changes:
        for path, text in change.items():
            files[path] = files[path].replace(*text) if isinstance(text, tuple) else text
    return code_scope.fingerprint(["pipeline.reader"], _write(tmp_path / name, files))


def test_the_scope_is_the_modules_and_the_names_they_use_transitively(tmp_path):
    root = _write(tmp_path, PROJECT)
    found = {str(path.relative_to(root)): names for path, names in code_scope.scope(["pipeline.reader"], root).items()}
    # Imports inside functions, relative imports and packages' __init__ files count; other
    # libraries, imports for type checkers only and modules nothing imports do not. Of an
    # imported module, only the definitions used count.
    assert found == {
        "modules/__init__.py": [code_scope.WHOLE],
        "modules/tables.py": ["TABLE"],
        "pipeline/__init__.py": [code_scope.WHOLE],
        "pipeline/helpers.py": ["rows"],
        "pipeline/helpers_of_parts.py": ["X", "Z"],
        "pipeline/reader.py": [code_scope.WHOLE],
        "pipeline/settings.py": ["SEPARATOR"],
        "pipeline/sub/__init__.py": [code_scope.WHOLE],
        "pipeline/sub/parts.py": ["Y"],
    }


KEPT = {
    "another module": {"pipeline/trainer.py": "from pipeline import reader\nSTEPS = 2\n", "modules/train.py": "LEARNING_RATE = 0.1\n"},
    "an unused constant": {"pipeline/settings.py": ("THRESHOLD = 0.9", "THRESHOLD = 0.95")},
    "an unused dataclass": {"pipeline/settings.py": ("floor: float = THRESHOLD", "floor: float = 0.5")},
    "an unused function": {"pipeline/helpers.py": ("return 0", "return 1")},
}

CHANGED = {
    "a used constant": {"pipeline/settings.py": ('SEPARATOR = ","', 'SEPARATOR = ";"')},
    "a constant a used constant reads": {"pipeline/helpers_of_parts.py": ("X = 1", "X = 2")},
    "a used constant's expression": {"pipeline/sub/parts.py": ("X + 1", "X + 2")},
    "a name imported inside a function": {"modules/tables.py": "TABLE = {1: 2}\n"},
    "a used function": {"pipeline/helpers.py": ("return parts.Y", "return parts.Y + 1")},
    "what runs on import": {"pipeline/settings.py": ('THRESHOLD = 0.9', 'THRESHOLD = 0.9\nprint(THRESHOLD)')},
    "an import": {"pipeline/settings.py": ("import dataclasses", "import dataclasses\nimport json")},
    "a package's __init__": {"pipeline/sub/__init__.py": "from . import parts\nLEVEL = 1\n"},
    "a constant a used module imports and the scope reads through it": {"pipeline/helpers_of_parts.py": ("Z = 5", "Z = 6")},
}


@pytest.mark.parametrize("change", sorted(KEPT))
def test_a_change_of_code_the_scope_does_not_use_keeps_the_fingerprint(tmp_path, change):
    assert _fingerprint(tmp_path, "changed", KEPT[change]) == _fingerprint(tmp_path, "first", {})


@pytest.mark.parametrize("change", sorted(CHANGED))
def test_a_change_of_code_the_scope_uses_changes_the_fingerprint(tmp_path, change):
    assert _fingerprint(tmp_path, "changed", CHANGED[change]) != _fingerprint(tmp_path, "first", {})


# Ways a module's names are reached that names alone cannot follow: the module then counts
# whole, so a change of its unused THRESHOLD changes the fingerprint.
WHOLE_MODULES = {
    "the module object used": {"pipeline/reader.py": ("settings.SEPARATOR", "settings")},
    "a name the module does not define": {"pipeline/reader.py": ("settings.SEPARATOR", "settings.MADE_AT_RUN_TIME")},
    "a global statement": {"pipeline/settings.py": ('SEPARATOR = ","', 'SEPARATOR = ","\n\n\ndef tab():\n    global SEPARATOR\n')},
    "globals()": {"pipeline/settings.py": ('SEPARATOR = ","', 'SEPARATOR = globals().get("S", ",")')},
    "a star import": {"pipeline/settings.py": ("import dataclasses", "import dataclasses\nfrom pipeline.helpers_of_parts import *")},
    "a module __getattr__": {"pipeline/settings.py": ("import dataclasses", "import dataclasses\n\n\ndef __getattr__(name):\n    return name\n")},
    "a metaclass": {"pipeline/settings.py": ("class Thresholds:", "class Thresholds(metaclass=type):")},
}


@pytest.mark.parametrize("way", sorted(WHOLE_MODULES))
def test_a_module_reached_other_than_by_its_names_counts_whole(tmp_path, way):
    unused_changed = {"pipeline/settings.py": ("THRESHOLD = 0.9", "THRESHOLD = 0.95")}
    assert _fingerprint(tmp_path, "changed", WHOLE_MODULES[way], unused_changed) != _fingerprint(tmp_path, "first", WHOLE_MODULES[way])


def test_a_definition_a_project_decorator_registers_counts_where_the_module_is_imported(tmp_path):
    registry = (
        'import dataclasses\n\nSEPARATOR = ","\nTHRESHOLD = 0.9\nREGISTERED = []\n\n\n'
        "def register(function):\n    REGISTERED.append(function)\n    return function\n\n\n"
        "@register\ndef rule():\n    return THRESHOLD\n"
    )
    changed = {"pipeline/settings.py": registry.replace("return THRESHOLD", "return 2 * THRESHOLD")}
    assert _fingerprint(tmp_path, "changed", changed) != _fingerprint(tmp_path, "first", {"pipeline/settings.py": registry})


def test_comments_docstrings_and_layout_keep_the_fingerprint_and_code_changes_it(tmp_path):
    code = 'def rate(fare):\n    return fare / 100\n'
    reworded = (
        '"""Rates."""\n# Why the rate is per cent.\n\n\ndef rate(fare):\n'
        '    """The rate of a fare."""\n    return fare/100  # cents\n'
    )
    changed = 'def rate(fare):\n    return fare / 1000\n'
    renamed = 'def rate(price):\n    return price / 100\n'
    # A string that is not a docstring is code.
    message = 'def rate(fare):\n    "cents"\n    x = "cents"\n    return fare / 100\n'
    fingerprints = {}
    for name, text in {"code": code, "reworded": reworded, "changed": changed, "renamed": renamed, "message": message}.items():
        root = _write(tmp_path / name, {"pipeline/__init__.py": "", "pipeline/rates.py": text})
        fingerprints[name] = code_scope.fingerprint(["pipeline.rates"], root)
    assert fingerprints["reworded"] == fingerprints["code"]
    assert len({fingerprints[name] for name in ("code", "changed", "renamed", "message")}) == 4


def test_a_file_that_reads_docstrings_keeps_them_in_its_code():
    with_doc = 'def usage():\n    """Run me."""\n    return usage.__doc__\n'
    other_doc = 'def usage():\n    """Run me twice."""\n    return usage.__doc__\n'
    assert code_scope.code_of(with_doc) != code_scope.code_of(other_doc)
    assert code_scope.code_of('def f():\n    """Only a docstring."""\n') == code_scope.code_of("def f():\n    pass\n")


def test_a_name_that_is_not_a_project_module_is_refused(tmp_path):
    root = _write(tmp_path, PROJECT)
    with pytest.raises(ValueError, match="'pipeline.missing' is not a module of the project"):
        code_scope.scope(["pipeline.missing"], root)
    with pytest.raises(ValueError, match="'numpy' is not a module of the project"):
        code_scope.scope(["numpy"], root)


def test_kept_span_statistics_depend_on_the_reader_and_the_split_not_on_the_model():
    root = code_scope.PROJECT_ROOT
    found = _names(code_scope.scope(["pipeline.validation.span_statistics", example_gen.__name__]), root)
    for needed in ("pipeline/validation/span_statistics.py", "pipeline/validation/span_chunks.py", "pipeline/validation/span_rows.py", "pipeline/components/example_gen.py", "pipeline/configs.py"):
        assert needed in found
    for other in ("modules/train.py", "modules/preprocessing.py", "pipeline/dag.py", "pipeline/components/model_gate.py", "serving/versions.py"):
        assert other not in found


# The modules each kept result is keyed by: ExampleGen's kept examples
# (`example_gen.kept_examples_salt`), the kept span statistics (`split_statistics_salt`) and
# the kept joins to external tables (`external_join.kept_joins_salt`).
KEPT_RESULTS = {
    "examples": ["pipeline.components.example_gen"],
    "statistics": ["pipeline.validation.span_statistics", "pipeline.components.example_gen"],
    "joins": ["pipeline.components.external_join"],
}


def _project_copy(tmp_path, name, edits):
    """The project's packages copied under tmp_path/name, with `edits` ([(path, old, new)])
    made; each old text must be in its file."""
    root = tmp_path / name
    for package in code_scope.PROJECT_PACKAGES:
        shutil.copytree(code_scope.PROJECT_ROOT / package, root / package, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    for path, old, new in edits:
        text = (root / path).read_text()
        assert old in text, f"{path} no longer holds {old!r}: update the test"
        (root / path).write_text(text.replace(old, new))
    return {kept: code_scope.fingerprint(modules, root) for kept, modules in KEPT_RESULTS.items()}


def test_what_kept_span_results_are_keyed_by_in_the_project(tmp_path):
    first = _project_copy(tmp_path, "first", [])
    # A blessing threshold, a drift threshold, the external check's wording and a new
    # acceptance rule are in files the readers import, but the code that computes what is
    # kept reads none of them.
    gates = _project_copy(
        tmp_path,
        "gates",
        [
            ("pipeline/configs.py", "min_auc: float = 0.93", "min_auc: float = 0.94"),
            ("pipeline/configs.py", "categorical_max_l_infinity: float = 0.15", "categorical_max_l_infinity: float = 0.16"),
            ("pipeline/components/external_check.py", "trips have no row in external table", "trips found no row in external table"),
            ("pipeline/validation/acceptance.py", "def acceptances_json(", "def _added():\n    return 1\n\n\ndef acceptances_json("),
        ],
    )
    assert gates == first
    buckets = _project_copy(tmp_path, "buckets", [("pipeline/configs.py", "DRIFT_HISTOGRAM_BUCKETS = 100", "DRIFT_HISTOGRAM_BUCKETS = 101")])
    assert buckets["examples"] == first["examples"]
    assert buckets["statistics"] != first["statistics"] and buckets["joins"] != first["joins"]
    reader = _project_copy(tmp_path, "reader", [("pipeline/validation/span_rows.py", "def parse_cell(", "def _added():\n    return 1\n\n\ndef parse_cell(")])
    assert reader == first
    cell = _project_copy(tmp_path, "cell", [("pipeline/validation/span_rows.py", "2**63 - 1", "2**62")])
    assert all(cell[kept] != first[kept] for kept in KEPT_RESULTS)
