"""The fingerprint of the project code that one computation runs: the modules named, whole, and
of every project module they reach, the definitions they use, transitively.

What is kept from run to run (each span's examples, its statistics, its join to an external
table) must be computed again when the code that computed it changes, and only then: the
project's whole fingerprint (`pipeline.runners.code_fingerprint`) would compute the whole
history again after a change to the Trainer's module, and a fingerprint of whole imported files
after a change to a blessing threshold in `configs.py`, which the readers import for two
constants. The code is read from the source files (`ast`), not imported, so the scope covers
imports inside functions too and loads nothing.

What counts (`scope`):
- each named module, whole;
- of a module the counted code reaches, the top-level statements that bind a name it uses (a
  function, a class, an assignment, an import), and what those use in turn;
- of every module imported on the way, what runs on import: its statements that bind no name,
  its imports, and its definitions with a decorator other than a few known to run no project
  code (`dataclasses.dataclass`, `functools.lru_cache`, ...);
- the `__init__.py` of every package on the way, whole.

Where a module's names cannot be followed, it counts whole: a module used other than as
`module.name`, a name it does not define, `from x import *`, a `global` statement, a
module-level `__getattr__`, `globals()`, `__dict__`, `__init_subclass__` or a metaclass.

A statement counts by its syntax tree without docstrings (`code_of`), so a change of comments,
docstrings or layout keeps what was kept; a change of any statement, name or constant it
counts does not.
"""
import ast
import functools
import hashlib
import pathlib
from typing import Dict, Iterable, Iterator, List, Optional, Sequence, Set, Tuple

# The folder that holds the project's packages; the packages whose imports are followed.
PROJECT_ROOT = pathlib.Path(__file__).resolve().parents[2]
PROJECT_PACKAGES = ("pipeline", "modules", "serving")

# What `scope` lists for a module counted whole.
WHOLE = "*"

# Decorators that run no project code when a definition is made: a definition they decorate
# counts only where it is used.
_PLAIN_DECORATORS = frozenset(
    {
        "dataclass",
        "dataclasses.dataclass",
        "lru_cache",
        "functools.lru_cache",
        "cache",
        "functools.cache",
        "functools.cached_property",
        "contextmanager",
        "contextlib.contextmanager",
        "staticmethod",
        "classmethod",
        "property",
        "overload",
        "typing.overload",
        "abc.abstractmethod",
    }
)

# Names that reach a module's names other than by `module.name`, or run code when a class is made.
_DYNAMIC_NAMES = frozenset({"globals", "__dict__", "__init_subclass__", "__getattr__"})

# An import's target: (module, None) for the module itself, (module, name) for a name it defines,
# (module, WHOLE) for a module reached as `a.b.c` through `import a.b.c`.
_Target = Tuple[str, Optional[str]]


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


def _has_docstring(node: ast.AST) -> bool:
    first = node.body[0] if node.body else None
    return isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) and isinstance(first.value.value, str)


def _parsed(source: str, filename: str) -> ast.Module:
    """The syntax tree without the docstrings of the module, its classes and its functions,
    unless the file names `__doc__` (it may compute with them)."""
    tree = ast.parse(source, filename)
    if "__doc__" not in source:
        for node in ast.walk(tree):
            if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and _has_docstring(node):
                # A body of a docstring alone still needs a statement.
                node.body = node.body[1:] or [ast.Pass()]
    return tree


def code_of(source: str, filename: str = "<source>") -> str:
    """What of a Python file's source the fingerprint counts: its syntax tree (`ast.dump`, which
    holds no comment, line or column) without the docstrings of the module, its classes and its
    functions. A file that names `__doc__` keeps its docstrings, since it may compute with them.

    Raises:
        SyntaxError: when the source does not parse.
    """
    return ast.dump(_parsed(source, filename))


def _dotted(node: ast.expr) -> str:
    """`a.b.c` for a name or an attribute chain of names, "" for anything else."""
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        head = _dotted(node.value)
        return f"{head}.{node.attr}" if head else ""
    return ""


def _stored_names(target: ast.expr) -> Optional[List[str]]:
    """The names an assignment to `target` binds, or None when it assigns into an object."""
    if isinstance(target, ast.Name):
        return [target.id]
    if isinstance(target, (ast.Tuple, ast.List)):
        names: List[str] = []
        for element in target.elts:
            inner = _stored_names(element.value if isinstance(element, ast.Starred) else element)
            if inner is None:
                return None
            names.extend(inner)
        return names
    return None


def _top_level_stores(statement: ast.stmt) -> Set[str]:
    """The module-level names a statement that runs on import may bind (not those inside the
    functions and classes it defines)."""
    names: Set[str] = set()
    todo: List[ast.AST] = [statement]
    while todo:
        node = todo.pop()
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
            continue
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            names.add(node.id)
        elif isinstance(node, ast.alias):
            names.add((node.asname or node.name).split(".")[0])
        todo.extend(ast.iter_child_nodes(node))
    return names


class _Module:
    """One project file, parsed once: its top-level statements, the names each binds, what runs
    on import and what its imports bind."""

    def __init__(self, name: str, path: pathlib.Path, root: pathlib.Path):
        self.name, self.path = name, path
        source = path.read_text(encoding="utf-8")
        tree = _without_type_checking_blocks(_parsed(source, str(path)))
        self.statements: List[ast.stmt] = tree.body
        self.dumps = [ast.dump(statement) for statement in self.statements]
        package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
        # local name -> what the imports anywhere in the file bind it to (project targets only)
        self.imports: Dict[str, List[_Target]] = {}
        # statement -> the project targets its imports (at any depth) load when it runs
        self.loads: Dict[int, List[_Target]] = {}
        self.binders: Dict[str, List[int]] = {}
        self.whole = path.name == "__init__.py"
        for index, statement in enumerate(self.statements):
            for node in ast.walk(statement):
                if isinstance(node, (ast.Import, ast.ImportFrom)):
                    for local, target, loaded in self._targets(node, package, root):
                        self.loads.setdefault(index, []).append(loaded)
                        if local:
                            self.imports.setdefault(local, []).append(target)
                        if loaded[1] == WHOLE:
                            # `from x import *`: names this file uses may be x's; both count whole.
                            self.whole = True
                elif isinstance(node, ast.Global) or (isinstance(node, ast.keyword) and node.arg == "metaclass"):
                    self.whole = True
                elif isinstance(node, ast.Name) and node.id in _DYNAMIC_NAMES:
                    self.whole = True
                elif isinstance(node, ast.Attribute) and node.attr in _DYNAMIC_NAMES:
                    self.whole = True
                elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and node.name in _DYNAMIC_NAMES:
                    self.whole = True
        bound = [self._bound(statement) for statement in self.statements]
        for index, names in enumerate(bound):
            for local in names or ():
                self.binders.setdefault(local, []).append(index)
        # What runs on import, and the names it defines that no other statement binds.
        self.on_import: List[int] = []
        self.bound_on_import: Set[str] = set()
        for index, statement in enumerate(self.statements):
            if bound[index] is None or isinstance(statement, (ast.Import, ast.ImportFrom)) or self._runs_project_code(statement):
                self.on_import.append(index)
                self.bound_on_import.update(_top_level_stores(statement))

    @staticmethod
    def _targets(node: ast.stmt, package: List[str], root: pathlib.Path) -> Iterator[Tuple[str, _Target, _Target]]:
        """(local name or "", what the name reads, what the import loads: WHOLE for a star
        import) of each project module or name an import reaches."""
        if isinstance(node, ast.Import):
            for alias in node.names:
                if _module_file(alias.name, root) is None:
                    continue
                if alias.asname:
                    yield alias.asname, (alias.name, None), (alias.name, None)
                else:
                    # `import a.b.c` binds `a`; what is read through it is not followed.
                    yield alias.name.split(".")[0], (alias.name, WHOLE), (alias.name, None)
            return
        base = package[: len(package) - node.level + 1] if node.level else []
        module = ".".join(base + ([node.module] if node.module else []))
        if _module_file(module, root) is None:
            return
        for alias in node.names:
            if alias.name == "*":
                yield "", (module, WHOLE), (module, WHOLE)
                continue
            submodule = f"{module}.{alias.name}"
            target = (submodule, None) if _module_file(submodule, root) else (module, alias.name)
            yield alias.asname or alias.name, target, (target[0], None)

    @staticmethod
    def _bound(statement: ast.stmt) -> Optional[List[str]]:
        """The names a top-level statement binds, or None for one that binds none of its own
        (it runs on import and always counts)."""
        if isinstance(statement, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            return [statement.name]
        if isinstance(statement, (ast.Import, ast.ImportFrom)):
            return [(alias.asname or alias.name).split(".")[0] for alias in statement.names if alias.name != "*"]
        if isinstance(statement, ast.Assign):
            names: List[str] = []
            for target in statement.targets:
                stored = _stored_names(target)
                if stored is None:
                    return None
                names.extend(stored)
            return names
        if isinstance(statement, (ast.AnnAssign, ast.AugAssign)):
            return _stored_names(statement.target)
        return None

    def _runs_project_code(self, statement: ast.stmt) -> bool:
        """Whether a definition's decorators may run project code when the module is imported."""
        decorators = getattr(statement, "decorator_list", [])
        for decorator in decorators:
            called = decorator.func if isinstance(decorator, ast.Call) else decorator
            name = _dotted(called)
            head = name.split(".")[0]
            defined_here = any(not isinstance(self.statements[index], (ast.Import, ast.ImportFrom)) for index in self.binders.get(head, ()))
            if name not in _PLAIN_DECORATORS or defined_here or head in self.imports:
                return True
        return False


class _Scope:
    """The statements counted, per module, found by following names from the modules named."""

    def __init__(self, root: pathlib.Path):
        self.root = root
        self.modules: Dict[str, _Module] = {}
        self.counted: Dict[str, Set[int]] = {}
        self.whole: Set[str] = set()
        self._todo: List[Tuple[str, int]] = []

    def module(self, name: str) -> _Module:
        if name not in self.modules:
            self.modules[name] = _Module(name, _module_file(name, self.root), self.root)
            self.counted[name] = set()
            # Importing a.b.c runs a/__init__.py and a/b/__init__.py first, and what runs on import.
            parts = name.split(".")
            for length in range(1, len(parts)):
                if _module_file(".".join(parts[:length]), self.root) is not None:
                    self.module(".".join(parts[:length]))
            loaded = self.modules[name]
            for index in loaded.on_import:
                self._count(name, index)
            if loaded.whole:
                self.use_whole(name)
        return self.modules[name]

    def use_whole(self, name: str) -> None:
        module = self.module(name)
        self.whole.add(name)
        for index in range(len(module.statements)):
            self._count(name, index)

    def use(self, name: str, attribute: Optional[str]) -> None:
        """Counts what using `name` (attribute None) or `name.attribute` needs."""
        module = self.module(name)
        if attribute is None or attribute == "__name__":
            return
        if attribute == WHOLE:
            self.use_whole(name)
        elif attribute in module.binders or attribute in module.imports:
            # Defined in the module, or imported into it from another (a re-export).
            self._resolve(module, attribute, None)
        elif attribute in module.bound_on_import:
            return
        elif _module_file(f"{name}.{attribute}", self.root) is not None:
            self.use_whole(f"{name}.{attribute}")
        else:
            # A name the file does not define: reached some other way; the module counts whole.
            self.use_whole(name)

    def _count(self, name: str, index: int) -> None:
        if index not in self.counted[name]:
            self.counted[name].add(index)
            self._todo.append((name, index))

    def follow(self) -> None:
        while self._todo:
            name, index = self._todo.pop()
            module = self.modules[name]
            statement = module.statements[index]
            for loaded, attribute in module.loads.get(index, ()):
                if attribute == WHOLE:
                    self.use_whole(loaded)
                else:
                    self.module(loaded)
            read_through: Set[int] = set()
            for node in ast.walk(statement):
                if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
                    read_through.add(id(node.value))
                    self._resolve(module, node.value.id, node.attr)
            for node in ast.walk(statement):
                if isinstance(node, ast.Name) and id(node) not in read_through:
                    self._resolve(module, node.id, None)

    def _resolve(self, module: _Module, local: str, attribute: Optional[str]) -> None:
        """Counts what a use of `local` (or `local.attribute`) in `module` reaches."""
        for index in module.binders.get(local, ()):
            self._count(module.name, index)
        for target_module, target_name in module.imports.get(local, ()):
            if target_name is None:
                # The module itself: `module.attribute` narrows, a use of the module object does not.
                self.use(target_module, attribute if attribute is not None else WHOLE)
            else:
                self.use(target_module, target_name)


def scope(modules: Sequence[str], root: pathlib.Path = PROJECT_ROOT) -> Dict[pathlib.Path, List[str]]:
    """What of the project the fingerprint of `modules` counts: each file reached, with the
    names of the top-level definitions counted ([WHOLE] for a file counted whole; none for a
    file of which only what runs on import counts).

    Raises:
        ValueError: when a name of `modules` is not a project module's.
    """
    found = _scope(tuple(sorted(set(modules))), root)
    listed: Dict[pathlib.Path, List[str]] = {}
    for name, module in found.modules.items():
        if name in found.whole:
            listed[module.path] = [WHOLE]
        else:
            defined = {index for index in found.counted[name] if not isinstance(module.statements[index], (ast.Import, ast.ImportFrom))}
            listed[module.path] = sorted({local for local, indices in module.binders.items() if set(indices) & defined})
    return dict(sorted(listed.items()))


def fingerprint(modules: Iterable[str], root: pathlib.Path = PROJECT_ROOT) -> str:
    """The SHA-256 over the files and the counted statements (`scope`) of `modules`, read at the
    first call and kept for the process (which keeps running the code it imported)."""
    return _fingerprint(tuple(sorted(set(modules))), root)


def _scope(modules: Tuple[str, ...], root: pathlib.Path) -> _Scope:
    for name in modules:
        if _module_file(name, root) is None:
            raise ValueError(f"{name!r} is not a module of the project under {root}")
    found = _Scope(root)
    for name in modules:
        found.use_whole(name)
    found.follow()
    return found


@functools.lru_cache(maxsize=None)
def _fingerprint(modules: Tuple[str, ...], root: pathlib.Path) -> str:
    found = _scope(modules, root)
    digest = hashlib.sha256()
    for name, module in sorted(found.modules.items(), key=lambda item: item[1].path):
        digest.update(str(module.path.relative_to(root)).encode())
        digest.update(b"\0")
        for index in sorted(found.counted[name]):
            digest.update(module.dumps[index].encode("utf-8"))
            digest.update(b"\n")
        digest.update(b"\0")
    return digest.hexdigest()
