"""A fingerprint of the model code, so caching and lineage notice a change of `modules/`."""
import hashlib
import pathlib

import modules


def module_fingerprint() -> str:
    """Returns the SHA-256 over the names and contents of the `modules` package's .py files."""
    digest = hashlib.sha256()
    package_dir = pathlib.Path(modules.__file__).parent
    for path in sorted(package_dir.glob("*.py")):
        digest.update(path.name.encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()
