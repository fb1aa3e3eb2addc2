"""``infomtl push``: an export (or a run, exported on the way) uploaded to a Hugging Face Hub repo.

:func:`push` takes an export folder (``infomtl export``), checked against its manifest
first, or a run / STL folder, exported into a temporary folder with
:func:`~infomtl.inference.export.export_run` (removed afterwards). It creates the repo
if needed (``HfApi.create_repo(exist_ok=True)``; ``private`` applies to a new repo, an
existing one keeps its visibility), the branch ``revision`` if it is missing, and
uploads the files the export's manifest lists, and the manifest, in one commit
(``HfApi.upload_folder``). Files of the repo outside the export are left as they are.

The token is the Hub client's own: ``HF_TOKEN``, or the one ``hf auth login`` stored.
infomtl never asks for it, passes it on, writes it or prints it. No token, the network
down, or the Hub refusing (wrong token, no write access) is one
:class:`~infomtl.errors.InfomtlError` line.
"""

from __future__ import annotations

import importlib
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from infomtl.artifacts.run_folder import RunFolder
from infomtl.errors import ConfigError, InfomtlError, first_line
from infomtl.fileio import read_json
from infomtl.inference.export import MANIFEST, export_run, verify_export
from infomtl.inference.hub import is_repo_id
from infomtl.inference.model_card import card_license


@dataclass(frozen=True)
class Pushed:
    """What :func:`push` uploaded: the repo's URL, the branch, the commit (its id and URL)."""

    repo_url: str
    revision: str
    commit: str
    commit_url: str


def push(source: str | Path, repo_id: str, revision: str | None = None, private: bool = False,
         commit_message: str | None = None, license: str | None = None) -> Pushed:
    """Upload the export (or run) folder ``source`` to the Hub repo ``repo_id`` (see the module docstring).

    Args:
        license: the model card's license when ``source`` is a run folder (default
            :data:`~infomtl.inference.model_card.DEFAULT_LICENSE`); an export folder keeps the
            one it was exported with, and another value is refused.

    Raises:
        ConfigError: a repo id without a namespace or of the wrong syntax, a ``license`` that
            differs from the export's.
        InfomtlError: ``source`` neither a run nor an export folder, an export failing its
            checksums, no token, the Hub unreachable or refusing.
    """
    from huggingface_hub import get_token

    if not is_repo_id(repo_id):
        raise ConfigError(f"{repo_id}: not a Hub repo id; expected NAMESPACE/NAME (your user or organization, "
                          "then the model's name: letters, digits, -, _ and .)")
    folder = Path(source)
    if not folder.is_dir():
        raise InfomtlError(f"{folder}: no such run or export folder")
    if get_token() is None:
        raise InfomtlError("no Hugging Face token: set HF_TOKEN (a token with write access, "
                           "https://huggingface.co/settings/tokens) or run `hf auth login`")
    if (folder / MANIFEST).is_file():
        manifest = verify_export(folder)
        written = card_license(folder / "README.md")
        if license is not None and license != written:
            raise ConfigError(f"--license {license}: the export {folder} was written with license {written}; "
                              f"export the run again with `infomtl export --license {license}`")
        return _upload(folder, manifest, repo_id, revision, private, commit_message)
    if not RunFolder(folder).holds_model:
        raise InfomtlError(f"{folder}: not a run folder (no checkpoint/) nor an export folder (no {MANIFEST})")
    with tempfile.TemporaryDirectory(prefix="infomtl-push-") as tmp:
        exported = export_run(folder, Path(tmp) / "export", license=license)
        return _upload(exported, read_json(exported / MANIFEST), repo_id, revision, private, commit_message)


def _upload(folder: Path, manifest: dict[str, Any], repo_id: str, revision: str | None, private: bool,
            message: str | None) -> Pushed:
    """One commit of the files ``manifest`` lists, and the manifest, to the branch ``revision``."""
    from huggingface_hub import HfApi
    from huggingface_hub.errors import HfHubHTTPError

    files = sorted(manifest["files"]) + [MANIFEST]
    branch = revision or "main"
    api = HfApi(library_name="infomtl")
    unreachable: tuple[type[BaseException], ...] = (OSError, *_transport_errors())
    try:
        url = api.create_repo(repo_id, private=private, exist_ok=True)
        if branch != "main":
            api.create_branch(repo_id, branch=branch, exist_ok=True)
        info = api.upload_folder(repo_id=repo_id, folder_path=folder, revision=branch,
                                 allow_patterns=[_literal(f) for f in files],
                                 commit_message=message or f"infomtl export ({len(files)} files)")
    except HfHubHTTPError as exc:
        raise InfomtlError(f"push to {repo_id}: the Hub refused ({first_line(exc)})") from None
    except unreachable as exc:  # no network, offline mode (a ConnectionError)
        raise InfomtlError(f"push to {repo_id}: cannot reach the Hugging Face Hub ({type(exc).__name__}: "
                           f"{first_line(exc)})") from None
    return Pushed(str(url), branch, str(info.oid), str(info.commit_url))


def _literal(name: str) -> str:
    """``name`` as an ``fnmatch`` pattern matching itself only (``[`` ``]`` ``*`` ``?`` escaped)."""
    return re.sub(r"([\[\]*?])", r"[\1]", name)


def _transport_errors() -> tuple[type[BaseException], ...]:
    """The HTTP client's connection errors: huggingface_hub 1.x sends with ``httpx``, 2.x with
    its fork ``httpx2``; neither is an ``OSError``."""
    found = []
    for name in ("httpx2", "httpx"):
        try:
            found.append(importlib.import_module(name).TransportError)
        except (ImportError, AttributeError):
            continue
    return tuple(found)
