"""The layout's rules, read from the code: imports flow one way between the rooms, and every
path the README and the docs name exists."""
import ast
import pathlib
import re
from typing import Dict, Iterator, Set, Tuple

REPO_ROOT = pathlib.Path(__file__).resolve().parents[2]
PACKAGES = ("pipeline", "modules", "serving")

# Room -> the rooms it may import (besides itself). A module belongs to the longest room that
# prefixes its dotted name. Entry points sit on top; tools that read a finished run (ops) see
# artifacts and libraries but never the DAG or the runners; components see libraries; the
# model's module code and the serving code see nothing of the pipeline.
_LIBRARIES = {"pipeline.configs", "pipeline.component_ids", "pipeline.spans", "pipeline.validation", "modules"}
ALLOWED: Dict[str, Set[str]] = {
    "modules": set(),
    "serving": set(),
    "serving.versions": set(),
    "serving.console": set(),
    "serving.client": {"modules"},
    # The client's sampled request log writes the dev server's request-log format (its file
    # names are the one home skew reads them by).
    "serving.client.request_log": {"serving.devserver.request_log"},
    # The proxy in front of TF Serving: the client's request log and metadata calls, and the dev
    # server's REST route parser and request-row reader, so both servers' logs read alike, and
    # its background event-loop thread.
    "serving.logging_proxy": {"serving.client", "serving.console", "serving.devserver.errors", "serving.devserver.loop_thread", "serving.devserver.request_log", "serving.devserver.rest_api"},
    "serving.devserver": {"serving.versions", "modules.features"},
    "serving.model_server": {"serving.devserver", "serving.console"},
    "pipeline": set(),
    "pipeline.component_ids": set(),
    "pipeline.configs": {"modules"},
    "pipeline.spans": {"pipeline.configs"},
    "pipeline.validation": {"pipeline.configs", "pipeline.spans", "modules"},
    "pipeline.components": _LIBRARIES | {"serving.client", "serving.devserver", "serving.versions"},
    "pipeline.eval_metrics": set(),
    "pipeline.eval_config": {"pipeline.configs", "pipeline.eval_metrics", "modules"},
    "pipeline.dag": _LIBRARIES | {"pipeline.components", "pipeline.eval_config"},
    "pipeline.ops": _LIBRARIES | {"pipeline.components.artifacts", "serving"},
    "pipeline.data_tools": _LIBRARIES | {"serving.console"},
    "pipeline.runners": _LIBRARIES | {"pipeline", "pipeline.dag", "pipeline.eval_config", "pipeline.components", "pipeline.ops", "serving"},
    "pipeline.__main__": {"pipeline.runners", "pipeline.ops", "pipeline.data_tools", "serving.console"},
    "pipeline.accept": {"pipeline.ops"},
}


def _module_name(path: pathlib.Path) -> str:
    parts = list(path.relative_to(REPO_ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _room(name: str, rooms) -> str:
    matches = [room for room in rooms if name == room or name.startswith(room + ".")]
    return max(matches, key=len) if matches else ""


def _is_type_checking(node: ast.If) -> bool:
    return isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING"


def _imports(tree: ast.AST) -> Iterator[Tuple[int, str]]:
    """(line, imported module) for each project import, names of `from X import name` included
    as `X.name`; imports under `if TYPE_CHECKING:` are annotations only and left out."""
    skipped = {id(child) for node in ast.walk(tree) if isinstance(node, ast.If) and _is_type_checking(node) for child in ast.walk(node)}
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:
                yield node.lineno, f"{node.module}.{alias.name}"


def _violations():
    rooms = set(ALLOWED)
    found = []
    for package in PACKAGES:
        for path in sorted((REPO_ROOT / package).rglob("*.py")):
            if "__pycache__" in path.parts:
                continue
            source = _module_name(path)
            source_room = _room(source, rooms)
            allowed = ALLOWED[source_room] | {source_room}
            for line, imported in _imports(ast.parse(path.read_text())):
                if imported.split(".")[0] not in PACKAGES:
                    continue
                # `from pipeline.configs import X` reads as pipeline.configs.X, in pipeline.configs's room;
                # a room allowed as a whole allows what is inside it.
                if not any(imported == room or imported.startswith(room + ".") for room in allowed):
                    found.append(f"{path.relative_to(REPO_ROOT)}:{line}: {source_room} imports {imported}")
    return found


def test_imports_flow_one_way_between_the_rooms():
    assert _violations() == []


def test_the_rule_catches_an_import_against_the_direction(tmp_path, monkeypatch):
    # A component that imports a runner breaks the direction, and the check names it.
    offender = REPO_ROOT / "pipeline" / "components" / "_layout_probe.py"
    offender.write_text("from pipeline.runners import local\n")
    try:
        assert _violations() == ["pipeline/components/_layout_probe.py:1: pipeline.components imports pipeline.runners.local"]
    finally:
        offender.unlink()


def test_every_module_belongs_to_a_room():
    rooms = set(ALLOWED)
    unroomed = [
        str(path.relative_to(REPO_ROOT))
        for package in PACKAGES
        for path in (REPO_ROOT / package).rglob("*.py")
        if _room(_module_name(path), rooms) in ("", "pipeline") and _module_name(path) != "pipeline"
    ]
    assert unroomed == []


# Paths the README and the docs name: `pipeline/...`, `serving/...`, `docs/x.md` and the like,
# and the modules of `python -m` commands. Globs (`data/span-*`) and the folders a documented
# command creates or an example message names (CREATED) are not repository paths.
CREATED = {"data/external/us_il_holidays/v2/holidays.csv", "data/span-5/data.csv"}
_DOC_FILES = [REPO_ROOT / "README.md", *sorted((REPO_ROOT / "docs").glob("*.md")), REPO_ROOT / "serving" / "README.md"]
_PATH = re.compile(r"(?<![\w./-])((?:pipeline|serving|modules|tests|benchmarks|scripts|docs|data|\.ci)/[\w./-]*[\w/])")
_MODULE = re.compile(r"python -m ((?:pipeline|serving|modules|benchmarks|scripts)(?:\.\w+)*)")


def _named_paths():
    for doc in _DOC_FILES:
        for number, line in enumerate(doc.read_text().splitlines(), 1):
            for match in _PATH.finditer(line):
                path = match.group(1).rstrip(".")
                if line[match.end() : match.end() + 1] in ("*", "-", "<", "{") or path in CREATED:
                    continue
                yield doc, number, path
            for match in _MODULE.finditer(line):
                yield doc, number, match.group(1).replace(".", "/")


def test_every_path_the_docs_name_exists():
    missing = []
    for doc, number, path in _named_paths():
        candidates = [REPO_ROOT / path, REPO_ROOT / f"{path}.py", REPO_ROOT / path / "__init__.py", REPO_ROOT / path / "__main__.py"]
        if not any(candidate.exists() for candidate in candidates):
            missing.append(f"{doc.relative_to(REPO_ROOT)}:{number}: {path}")
    assert missing == []


def test_the_docs_path_check_sees_paths():
    # The check is not vacuous: the README names the entry point's module and the DAG.
    named = {path for _, _, path in _named_paths()}
    assert "pipeline/dag.py" in named and "pipeline/accept" in named
