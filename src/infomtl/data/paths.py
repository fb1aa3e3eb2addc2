"""Where benchmark data lives: an explicit folder (then only there), else ``$INFOMTL_DATA``,
else the user cache.

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
    """The roots searched without ``--data-dir``, in order: ``$INFOMTL_DATA``, the cache root
    (``data_dir``, when given, comes first)."""
    roots = []
    if data_dir is not None and str(data_dir):
        roots.append(Path(data_dir).expanduser())
    env = os.environ.get(ENV_VAR)
    if env:
        roots.append(Path(env).expanduser())
    roots.append(default_cache_root())
    return roots


def resolve_benchmark_dir(benchmark: str, data_dir: str | Path | None = None) -> Path:
    """The folder of ``benchmark``: in ``data_dir`` when one is given (nowhere else), else in the
    first of ``$INFOMTL_DATA`` and the cache root that has one.

    A root whose own name is the benchmark (``--data-dir data/tweeteval``) is
    accepted as the benchmark folder itself.

    Raises:
        InfomtlError: the folder named does not hold the benchmark, or no root does; the
            message names the paths tried and how to provide the data.
    """
    given = data_dir is not None and bool(str(data_dir))
    roots = [Path(str(data_dir)).expanduser()] if given else candidate_roots()
    tried = []
    for root in roots:
        folder = root / benchmark
        if folder.is_dir():
            return folder
        if root.name == benchmark and root.is_dir():
            return root
        tried.append(str(folder))
    how = f"--data-dir DIR (a folder holding {benchmark}/) or {ENV_VAR}=DIR"
    if benchmark in DOWNLOADABLE:
        how += f", or run `infomtl download {benchmark}`"
    if given:
        state = f"holds no {benchmark}/ folder" if roots[0].is_dir() else "does not exist"
        raise InfomtlError(f"--data-dir {roots[0]} {state} (looked for {tried[0]}); point it at the folder "
                           f"that holds {benchmark}/, or leave it out to use {ENV_VAR} or the cache")
    raise InfomtlError(f"{benchmark} data not found (tried {', '.join(tried)}); provide it with {how}")
