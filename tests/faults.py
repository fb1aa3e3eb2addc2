"""Failing file systems for tests: a disk that fills (ENOSPC from a patched write), a read-only
folder (also for root, who ignores folder permissions unless CAP_DAC_OVERRIDE is dropped), and
a file-size limit (RLIMIT_FSIZE, so the kernel itself answers EFBIG) in a subprocess."""

from __future__ import annotations

import builtins
import ctypes
import errno
import io
import json
import os
import stat
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]


class _FillingFile:
    """A real file whose writes stop with ENOSPC once ``budget`` bytes are written: the
    first bytes land, as on a disk that fills during the write."""

    def __init__(self, fh: Any, budget: int) -> None:
        self._fh, self._budget = fh, budget

    def write(self, data: Any) -> int:
        if len(data) > self._budget:
            self._fh.write(data[: self._budget])
            self._budget = 0
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        self._budget -= len(data)
        return self._fh.write(data)

    def __enter__(self) -> _FillingFile:
        return self

    def __exit__(self, *exc: Any) -> Any:
        return self._fh.__exit__(*exc)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._fh, name)


class DiskFull:
    """Writes to files whose path contains ``target`` fail with ENOSPC after ``budget`` bytes,
    from the ``skip + 1``-th such write on (a file opened for writing, or an ``os.write``):
    through ``open`` (text and binary files, pathlib's too) and ``os.write`` (appends).
    ``hits`` counts the writes that failed."""

    def __init__(self, monkeypatch: Any, target: str, skip: int = 0, budget: int = 8) -> None:
        self.target, self.skip, self.budget, self.hits = target, skip, budget, 0
        self._seen = 0
        real_open, real_write = builtins.open, os.write

        def failing(name: str) -> bool:
            if self.target not in name:
                return False
            self._seen += 1
            return self._seen > self.skip

        def fake_open(file: Any, mode: str = "r", *args: Any, **kwargs: Any) -> Any:
            fh = real_open(file, mode, *args, **kwargs)
            if isinstance(file, (str, os.PathLike)) and any(m in mode for m in "wax+") \
                    and failing(os.fspath(file)):
                self.hits += 1
                return _FillingFile(fh, self.budget)
            return fh

        def fake_write(fd: int, data: Any) -> int:
            try:
                name = os.readlink(f"/proc/self/fd/{fd}")
            except OSError:
                name = ""
            if name and failing(name):
                self.hits += 1
                real_write(fd, bytes(data[: self.budget]))
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            return real_write(fd, data)

        monkeypatch.setattr(builtins, "open", fake_open)
        monkeypatch.setattr(io, "open", fake_open)
        monkeypatch.setattr(os, "write", fake_write)


# -- a read-only folder -----------------------------------------------------------------

_CAP_DAC_OVERRIDE, _CAP_DAC_READ_SEARCH = 1, 2


class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32), ("inheritable", ctypes.c_uint32)]


@contextmanager
def _without_dac_override() -> Iterator[None]:
    """For root: drop CAP_DAC_OVERRIDE from this thread's effective set (folder permissions
    then apply to root too), and take it back afterwards."""
    if os.geteuid() != 0:
        yield
        return
    libc = ctypes.CDLL(None, use_errno=True)
    header, data = _CapHeader(0x20080522, 0), (_CapData * 2)()
    if libc.capget(ctypes.byref(header), data) != 0:
        raise OSError(ctypes.get_errno(), "capget")
    saved = data[0].effective
    data[0].effective &= ~((1 << _CAP_DAC_OVERRIDE) | (1 << _CAP_DAC_READ_SEARCH))
    if libc.capset(ctypes.byref(header), data) != 0:
        raise OSError(ctypes.get_errno(), "capset")
    try:
        yield
    finally:
        data[0].effective = saved
        libc.capset(ctypes.byref(header), data)


@contextmanager
def read_only(*folders: Path) -> Iterator[None]:
    """The ``folders`` (not what is under them) cannot be written in the block: nothing can be
    created, renamed or removed in them."""
    modes = {f: stat.S_IMODE(f.stat().st_mode) for f in folders}
    for f in folders:
        f.chmod(0o555)
    try:
        with _without_dac_override():
            probe = folders[0] / ".probe"
            try:
                probe.touch()
            except PermissionError:
                pass
            else:
                probe.unlink()
                raise RuntimeError("folder permissions are not enforced here")
            yield
    finally:
        for f, mode in modes.items():
            f.chmod(mode)


# -- a file-size limit ---------------------------------------------------------------------

_LIMITED = """
import contextlib, io, json, resource, signal, sys
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # the write then fails with EFBIG
from infomtl.cli import main
results = []
for limit, argv in json.loads(sys.argv[1]):
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, resource.getrlimit(resource.RLIMIT_FSIZE)[1]))
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(argv)
    resource.setrlimit(resource.RLIMIT_FSIZE, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
    results.append({"code": code, "stdout": out.getvalue(), "stderr": err.getvalue()})
print(json.dumps(results))
"""


def with_file_size_limit(commands: list[tuple[int, list[str]]], timeout: float = 600) -> list[dict[str, Any]]:
    """Run each ``(limit in bytes, infomtl argv)`` in one subprocess under that RLIMIT_FSIZE:
    every write past the limit fails in the kernel (EFBIG), whoever writes (Python,
    safetensors, tokenizers). Returns each command's exit status, stdout and stderr."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false",
           "PYTHONPATH": str(REPO / "src")}
    done = subprocess.run([sys.executable, "-c", _LIMITED, json.dumps(commands)], env=env,
                          capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def leftovers(folder: Path) -> list[Path]:
    """Temporary files or folders a failed write left behind."""
    return [p for p in folder.rglob("*") if p.name.endswith((".tmp", ".old"))
            or ".tmp." in p.name or p.name.endswith(".tmp-export")]


def one_error_line(err: str, *parts: str) -> str:
    """The single ``error:`` line of ``err`` (no traceback), which contains every one of ``parts``."""
    lines = [line for line in err.strip().splitlines() if line.strip()]
    assert "Traceback" not in err, err
    errors = [line for line in lines if line.startswith("error: ")]
    assert len(errors) == 1, err
    for part in parts:
        assert part in errors[0], (part, errors[0])
    return errors[0]

