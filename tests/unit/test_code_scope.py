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
    "pipeline/reader.py": "import numpy\nfrom pipeline import helpers\n\n\ndef read():\n    from modules.tables import TABLE\n    return TABLE\n",
    "pipeline/helpers.py": "from .sub import parts\n",
    "pipeline/sub/__init__.py": "from . import parts\nfrom typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from pipeline import trainer\n",
    "pipeline/sub/parts.py": "from ..helpers_of_parts import X\n",
    "pipeline/helpers_of_parts.py": "X = 1\n",
    "pipeline/trainer.py": "from pipeline import reader\n",
    "modules/__init__.py": "",
    "modules/tables.py": "TABLE = {}\n",
    "modules/train.py": "",
}


def _names(paths, root):
    return sorted(str(path.relative_to(root)) for path in paths)


def test_the_files_are_the_modules_and_their_project_imports_transitively(tmp_path):
    root = _write(tmp_path, PROJECT)
    found = code_scope.files_imported(["pipeline.reader"], root)
    # Imports inside functions, relative imports and packages' __init__ files count; other
    # libraries, imports for type checkers only and modules nothing imports do not.
    assert _names(found, root) == [
        "modules/__init__.py",
        "modules/tables.py",
        "pipeline/__init__.py",
        "pipeline/helpers.py",
        "pipeline/helpers_of_parts.py",
        "pipeline/reader.py",
        "pipeline/sub/__init__.py",
        "pipeline/sub/parts.py",
    ]


def test_the_fingerprint_changes_with_an_imported_file_only(tmp_path):
    first = _write(tmp_path / "first", PROJECT)
    other = tmp_path / "other_code_changed"
    shutil.copytree(first, other)
    (other / "pipeline" / "trainer.py").write_text("from pipeline import reader\nSTEPS = 2\n")
    (other / "modules" / "train.py").write_text("LEARNING_RATE = 0.1\n")
    imported = tmp_path / "imported_code_changed"
    shutil.copytree(first, imported)
    (imported / "pipeline" / "helpers_of_parts.py").write_text("X = 2\n")
    fingerprints = {root.name: code_scope.fingerprint(["pipeline.reader"], root) for root in (first, other, imported)}
    assert fingerprints["first"] == fingerprints["other_code_changed"]
    assert fingerprints["first"] != fingerprints["imported_code_changed"]


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
        code_scope.files_imported(["pipeline.missing"], root)
    with pytest.raises(ValueError, match="'numpy' is not a module of the project"):
        code_scope.files_imported(["numpy"], root)


def test_kept_span_statistics_depend_on_the_reader_and_the_split_not_on_the_model():
    root = code_scope.PROJECT_ROOT
    found = _names(code_scope.files_imported(["pipeline.validation.span_statistics", example_gen.__name__]), root)
    for needed in ("pipeline/validation/span_statistics.py", "pipeline/validation/span_chunks.py", "pipeline/validation/span_rows.py", "pipeline/components/example_gen.py", "pipeline/configs.py"):
        assert needed in found
    for other in ("modules/train.py", "modules/preprocessing.py", "pipeline/dag.py", "pipeline/components/model_gate.py", "serving/versions.py"):
        assert other not in found
