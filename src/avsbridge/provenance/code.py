"""Hashes of the code a rule runs.

Snakemake's code trigger sees only a rule's shell string or script file, not
the package modules the script imports. Each rule therefore carries a param
with the hash of the modules it depends on, so a change in ``src/`` re-runs
exactly the rules that run that code.
"""

from __future__ import annotations

import functools
import hashlib
from importlib import util
from pathlib import Path

# Modules every stage imports (a change there re-runs everything).
COMMON = ("avsbridge.io", "avsbridge.registry", "avsbridge.data")


def _module_files(name: str) -> list[Path]:
    spec = util.find_spec(name)
    if spec is None or spec.origin is None:
        raise ModuleNotFoundError(f"cannot hash code of missing module {name!r}")
    origin = Path(spec.origin)
    if spec.submodule_search_locations:
        root = origin.parent
        return sorted(
            p
            for p in root.rglob("*")
            if p.is_file()
            and p.suffix in {".py", ".yaml", ".json", ".txt"}
            and "__pycache__" not in p.parts
        )
    return [origin]


@functools.cache
def code_hash(*modules: str) -> str:
    """sha256 over the source files of ``modules`` (packages recursively) plus COMMON."""
    digest = hashlib.sha256()
    for name in sorted(set(modules) | set(COMMON)):
        for path in _module_files(name):
            digest.update(name.encode())
            digest.update(path.name.encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()[:16]
