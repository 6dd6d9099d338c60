"""Fingerprints of the project's code, so TFX's cache and lineage notice a change of code.

TFX's cache key holds an executor's class path and its execution properties, not its code:
on unchanged data, a fixed executor would be answered from the cache. Each custom component
therefore takes `project_fingerprint()` as a property, and Transform and Trainer take
`module_fingerprint()` (the code they run is the module files).
"""
import hashlib
import pathlib
from typing import Iterable

import modules
import pipeline
import serving

# Files that are code or part of a component's behaviour: the curated schema is read by
# ExampleGen and the data checks, the serving configs by the serving check.
_CODE_SUFFIXES = (".py", ".pbtxt", ".config")


def _digest(package_dirs: Iterable[pathlib.Path]) -> str:
    digest = hashlib.sha256()
    for package_dir in package_dirs:
        for path in sorted(p for p in package_dir.rglob("*") if p.suffix in _CODE_SUFFIXES and p.is_file()):
            if "__pycache__" in path.parts:
                continue
            digest.update(str(path.relative_to(package_dir.parent)).encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()


def module_fingerprint() -> str:
    """Returns the SHA-256 over the names and contents of the `modules` package's files."""
    return _digest([pathlib.Path(modules.__file__).parent])


def project_fingerprint() -> str:
    """Returns the SHA-256 over the `pipeline`, `serving` and `modules` packages' code files:
    what the project's own executors run."""
    return _digest(pathlib.Path(package.__file__).parent for package in (pipeline, serving, modules))
