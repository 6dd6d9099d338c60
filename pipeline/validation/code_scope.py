"""The fingerprint of the project code that one computation runs: the modules named, and every
project module they import, transitively.

What is kept from run to run (each span's statistics, each span's join to an external table)
must be computed again when the code that computed it changes, and only then: the project's
whole fingerprint (`pipeline.runners.code_fingerprint`) would compute the whole history again
after a change to the Trainer's module. The imports are read from the source files (`ast`), not
imported, so the fingerprint covers imports inside functions too and loads nothing.

A file counts by its syntax tree without docstrings (`code_of`), so a change of comments,
docstrings or layout keeps what was kept; a change of any statement, name or constant does not.
"""
import ast
import functools
import hashlib
import pathlib
from typing import Iterable, List, Optional, Sequence, Set

# The folder that holds the project's packages; the packages whose imports are followed.
PROJECT_ROOT = pathlib.Path(__file__).resolve().parents[2]
PROJECT_PACKAGES = ("pipeline", "modules", "serving")


def _module_file(name: str, root: pathlib.Path) -> Optional[pathlib.Path]:
    """The source file of project module `name` (a module or a package's `__init__.py`), or
    None for a name outside the project or one that names no module (a function, a class)."""
    parts = name.split(".")
    if parts[0] not in PROJECT_PACKAGES:
        return None
    base = root.joinpath(*parts)
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _module_name(path: pathlib.Path, root: pathlib.Path) -> str:
    relative = path.relative_to(root).with_suffix("")
    parts = relative.parts[:-1] if relative.name == "__init__" else relative.parts
    return ".".join(parts)


def _imported_names(path: pathlib.Path, root: pathlib.Path) -> Set[str]:
    """Every module name the file imports, and for `from x import y` also `x.y` (which may be
    a module)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    package = _module_name(path, root).split(".")
    if path.name != "__init__.py":
        package = package[:-1]
    names: Set[str] = set()
    for node in ast.walk(_without_type_checking_blocks(tree)):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            module = ".".join(base + ([node.module] if node.module else []))
            names.add(module)
            names.update(f"{module}.{alias.name}" for alias in node.names)
    return names


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _without_type_checking_blocks(tree: ast.Module) -> ast.Module:
    """The module without the bodies of `if TYPE_CHECKING:` blocks: imports for type checkers,
    which never run."""

    class _Drop(ast.NodeTransformer):
        def visit_If(self, node: ast.If) -> ast.AST:
            if _is_type_checking(node.test):
                node.body = [ast.Pass()]
            self.generic_visit(node)
            return node

    return _Drop().visit(tree)


def files_imported(modules: Sequence[str], root: pathlib.Path = PROJECT_ROOT) -> List[pathlib.Path]:
    """The source files of `modules`, their packages and every project module they import,
    transitively, sorted.

    Raises:
        ValueError: when a name of `modules` is not a project module's.
    """
    for name in modules:
        if _module_file(name, root) is None:
            raise ValueError(f"{name!r} is not a module of the project under {root}")
    seen: Set[pathlib.Path] = set()
    todo = list(modules)
    while todo:
        parts = todo.pop().split(".")
        # Importing a.b.c runs a/__init__.py and a/b/__init__.py first.
        for length in range(1, len(parts) + 1):
            found = _module_file(".".join(parts[:length]), root)
            if found is not None and found not in seen:
                seen.add(found)
                todo.extend(_imported_names(found, root))
    return sorted(seen)


def fingerprint(modules: Iterable[str], root: pathlib.Path = PROJECT_ROOT) -> str:
    """The SHA-256 over the names and code (`code_of`) of `files_imported(modules)`, read at the
    first call and kept for the process (which keeps running the code it imported)."""
    return _fingerprint(tuple(sorted(modules)), root)


def code_of(source: str, filename: str = "<source>") -> str:
    """What of a Python file's source the fingerprint counts: its syntax tree (`ast.dump`, which
    holds no comment, line or column) without the docstrings of the module, its classes and its
    functions. A file that names `__doc__` keeps its docstrings, since it may compute with them.

    Raises:
        SyntaxError: when the source does not parse.
    """
    tree = ast.parse(source, filename)
    if "__doc__" not in source:
        for node in ast.walk(tree):
            if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and _has_docstring(node):
                # A body of a docstring alone still needs a statement.
                node.body = node.body[1:] or [ast.Pass()]
    return ast.dump(tree)


def _has_docstring(node: ast.AST) -> bool:
    first = node.body[0] if node.body else None
    return isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) and isinstance(first.value.value, str)


@functools.lru_cache(maxsize=None)
def _fingerprint(modules: Sequence[str], root: pathlib.Path) -> str:
    digest = hashlib.sha256()
    for path in files_imported(modules, root):
        digest.update(str(path.relative_to(root)).encode())
        digest.update(b"\0")
        digest.update(code_of(path.read_text(encoding="utf-8"), str(path)).encode("utf-8"))
    return digest.hexdigest()
