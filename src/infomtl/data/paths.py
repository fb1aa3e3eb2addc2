"""Where benchmark data lives: an explicit folder, ``$INFOMTL_DATA``, or the user cache.

Each location is a *root* holding one folder per benchmark::

    <root>/tweeteval/<task>/...
    <root>/affecteval/<task>/...
"""

from __future__ import annotations

import os
from pathlib import Path

from infomtl.errors import InfomtlError

ENV_VAR = "INFOMTL_DATA"
#: Benchmarks that ``infomtl download`` can fetch.
DOWNLOADABLE: tuple[str, ...] = ("tweeteval",)


def default_cache_root() -> Path:
    """``$XDG_CACHE_HOME/infomtl/data``, or ``~/.cache/infomtl/data``."""
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg) if xdg else Path.home() / ".cache"
    return base / "infomtl" / "data"


def candidate_roots(data_dir: str | Path | None = None) -> list[Path]:
    """The roots searched, in order: ``data_dir``, ``$INFOMTL_DATA``, the cache root."""
    roots = []
    if data_dir is not None and str(data_dir):
        roots.append(Path(data_dir).expanduser())
    env = os.environ.get(ENV_VAR)
    if env:
        roots.append(Path(env).expanduser())
    roots.append(default_cache_root())
    return roots


def resolve_benchmark_dir(benchmark: str, data_dir: str | Path | None = None) -> Path:
    """The folder of ``benchmark`` in the first root that has one.

    A root whose own name is the benchmark (``--data-dir data/tweeteval``) is
    accepted as the benchmark folder itself.

    Raises:
        InfomtlError: no root holds the benchmark; the message lists the paths
            tried and how to provide the data.
    """
    tried = []
    for root in candidate_roots(data_dir):
        folder = root / benchmark
        if folder.is_dir():
            return folder
        if root.name == benchmark and root.is_dir():
            return root
        tried.append(str(folder))
    how = f"--data-dir DIR (a folder holding {benchmark}/) or {ENV_VAR}=DIR"
    if benchmark in DOWNLOADABLE:
        how += f", or run `infomtl download {benchmark}`"
    raise InfomtlError(f"{benchmark} data not found (tried {', '.join(tried)}); provide it with {how}")
