"""Download TweetEval from its public repository into a data root.

Files are fetched with :mod:`urllib` (``https://`` and ``file://`` URLs both work), by
default from the pinned commit :data:`TWEETEVAL_COMMIT` (``SOURCE.txt`` in the folder
records the URL), and each is written to a temporary name and renamed, so an interrupted download
never leaves a truncated file behind. Upstream keeps stance as one folder per
target; those are concatenated in the fixed target order into the merged layout
that :func:`~infomtl.data.tweeteval.load_tweeteval` reads (with
``{split}_target.txt``). The result is verified by loading it.
"""

from __future__ import annotations

import os
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from pathlib import Path
from urllib.parse import urlparse

from infomtl.data.paths import default_cache_root
from infomtl.data.textio import split_lines
from infomtl.data.tweeteval import GROUP_FILES, load_tweeteval, select_tweeteval_tasks
from infomtl.data.types import SPLITS
from infomtl.errors import DataError, InfomtlError

#: The commit of cardiffnlp/tweeteval the download is pinned to (its last, 2022-07-08): a
#: commit's files never change, so every download gets the same data.
TWEETEVAL_COMMIT = "4fbd22cd78421f05b1ecdb4fc5725bc7a7bd8f66"
#: Raw files of the ``datasets`` folder of cardiffnlp/tweeteval at :data:`TWEETEVAL_COMMIT`.
TWEETEVAL_URL = f"https://raw.githubusercontent.com/cardiffnlp/tweeteval/{TWEETEVAL_COMMIT}/datasets"
#: The file beside the downloaded tasks that says where they came from.
SOURCE_FILE = "SOURCE.txt"
#: Stance targets, in the order of TweetEval's evaluation script.
STANCE_TARGETS: tuple[str, ...] = ("abortion", "atheism", "climate", "feminist", "hillary")


class _NotFound(Exception):
    """The server (or the file system) has no file at this URL."""


def download_tweeteval(
    root: Path | None = None,
    tasks: Sequence[str] | None = None,
    base_url: str = TWEETEVAL_URL,
    timeout: float = 30,
    progress: Callable[[str], None] | None = None,
) -> Path:
    """Fetch TweetEval tasks into ``root/tweeteval`` and check that they load.

    Args:
        root: data root to write into (default :func:`default_cache_root`).
        tasks: task names (default: all six).
        base_url: URL of the folder holding one folder per task.
        timeout: seconds allowed per request.
        progress: called with each relative file name as it is written.

    Returns:
        The ``tweeteval`` folder.

    Raises:
        ConfigError: an unknown task name.
        InfomtlError: a network failure or a file missing upstream (naming the URL).
        DataError: a downloaded file that does not load.
    """
    names = select_tweeteval_tasks(tasks)
    folder = Path(root if root is not None else default_cache_root()) / "tweeteval"
    fetch = _Fetcher(base_url, timeout)
    for name in names:
        task_dir = folder / name
        task_dir.mkdir(parents=True, exist_ok=True)
        files = _task_files(fetch, name)
        for filename, payload in files.items():
            write_atomic(task_dir / filename, payload)
            if progress is not None:
                progress(f"{name}/{filename}")
    load_tweeteval(folder, names)
    write_atomic(folder / SOURCE_FILE, f"{base_url.rstrip('/')}\ntasks: {', '.join(names)}\n".encode())
    return folder


def write_atomic(path: Path, payload: bytes) -> None:
    """Write ``payload`` to a temporary file beside ``path``, then rename it into place."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_bytes(payload)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def _task_files(fetch: _Fetcher, name: str) -> dict[str, bytes]:
    """Every file of one task folder, keyed by its local file name."""
    files = {"mapping.txt": fetch.require(f"{name}/mapping.txt")}
    if name in GROUP_FILES:
        files.update(_stance_files(fetch, name))
        return files
    for split in SPLITS:
        for kind in ("text", "labels"):
            files[f"{split}_{kind}.txt"] = fetch.require(f"{name}/{split}_{kind}.txt")
    return files


def _stance_files(fetch: _Fetcher, name: str) -> dict[str, bytes]:
    """Stance merged from its per-target folders (or taken as is where the source is merged)."""
    group = GROUP_FILES[name]
    probe = f"{name}/{STANCE_TARGETS[0]}/train_text.txt"
    if not fetch.exists(probe):  # a mirror that already holds the merged layout
        merged = f"{name}/train_text.txt"
        if not fetch.exists(merged):
            raise InfomtlError(
                f"{fetch.url(probe)}: not found (nor {fetch.url(merged)}); "
                "is the base URL TweetEval's 'datasets' folder?"
            )
        return {
            f"{split}_{kind}.txt": fetch.require(f"{name}/{split}_{kind}.txt")
            for split in SPLITS
            for kind in ("text", "labels", group)
        }
    files = {}
    for split in SPLITS:
        texts: list[str] = []
        labels: list[str] = []
        groups: list[str] = []
        for target in STANCE_TARGETS:
            target_texts = _lines(fetch, f"{name}/{target}/{split}_text.txt")
            texts += target_texts
            labels += _lines(fetch, f"{name}/{target}/{split}_labels.txt")
            groups += [target] * len(target_texts)
        files[f"{split}_text.txt"] = _join(texts)
        files[f"{split}_labels.txt"] = _join(labels)
        files[f"{split}_{group}.txt"] = _join(groups)
    return files


def _lines(fetch: _Fetcher, rel: str) -> list[str]:
    payload = fetch.require(rel)
    try:
        return split_lines(payload.decode("utf-8"))
    except UnicodeDecodeError as exc:
        line = payload.count(b"\n", 0, exc.start) + 1
        raise DataError(fetch.url(rel), "invalid UTF-8 in downloaded file", line=line) from None


def _join(lines: list[str]) -> bytes:
    return ("".join(line + "\n" for line in lines)).encode("utf-8")


class _Fetcher:
    """GETs files under a base URL, turning failures into one-line errors."""

    def __init__(self, base_url: str, timeout: float) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self._cache: dict[str, bytes] = {}

    def url(self, rel: str) -> str:
        return f"{self.base_url}/{rel}"

    def require(self, rel: str) -> bytes:
        """The file's bytes; a missing file is an error naming it."""
        try:
            return self.get(rel)
        except _NotFound:
            hint = ""
            if rel == "sentiment/train_text.txt":
                hint = " (TweetEval's sentiment train text is missing from some copies of the repository)"
            raise InfomtlError(
                f"{self.url(rel)}: not found; the file {rel} is missing at the source{hint}"
            ) from None

    def exists(self, rel: str) -> bool:
        """Whether the file is there (it is kept for the next :meth:`get`)."""
        try:
            self._cache[rel] = self.get(rel)
        except _NotFound:
            return False
        return True

    def get(self, rel: str) -> bytes:
        """The file's bytes; raises :class:`_NotFound` for a missing file."""
        if rel in self._cache:
            return self._cache.pop(rel)
        url = self.url(rel)
        try:
            with urllib.request.urlopen(url, timeout=self.timeout) as response:
                return response.read()
        except urllib.error.HTTPError as exc:
            if exc.code == 404:
                raise _NotFound(url) from None
            raise InfomtlError(f"{url}: download failed (HTTP {exc.code} {exc.reason})") from None
        except urllib.error.URLError as exc:
            if isinstance(exc.reason, FileNotFoundError):
                raise _NotFound(url) from None
            raise self._offline(url, exc.reason) from None
        except (TimeoutError, OSError) as exc:
            raise self._offline(url, exc) from None

    @staticmethod
    def _offline(url: str, reason: object) -> InfomtlError:
        host = urlparse(url).netloc or "the source"
        return InfomtlError(
            f"cannot download {url}: {reason}; the machine may be offline or cannot reach {host} "
            "(copy the data by hand and pass --data-dir or set INFOMTL_DATA)"
        )
