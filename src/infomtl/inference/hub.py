"""Models on the Hugging Face Hub: telling a local folder from a repo id, and downloading one.

``infomtl.load``, ``infomtl predict`` and ``infomtl serve`` take a local run or export
folder, or the id of a Hub repo holding an export (``user/model``, written by
``infomtl push``). :func:`resolve_model` decides which, by one rule:

1. an existing local path wins (a folder ``user/model`` under the working folder is
   that folder, not the repo);
2. else a name of the Hub's repo id syntax with a namespace (``namespace/name``:
   letters, digits, ``-``, ``_``, ``.``; at most 96 characters) is a repo id, fetched
   with :func:`huggingface_hub.snapshot_download` at ``revision`` (a branch, tag or
   commit; default ``main``) into the Hugging Face cache and loaded from there as a
   local export (every file checked against its SHA-256, as for any export);
3. else it is a missing folder, and the caller's usual "no such folder" error follows.

The Hub client's own settings apply: ``HF_HUB_CACHE`` / ``HF_HOME`` (where the cache
is), ``HF_HUB_OFFLINE=1`` (cached snapshots only, no network), ``HF_TOKEN`` or
``hf auth login`` (private repos), ``HF_ENDPOINT``. A repo that cannot be had (not in
the cache while offline, unknown, private without a token, an unknown revision, no
network) is one :class:`~infomtl.errors.InfomtlError` line.
"""

from __future__ import annotations

from pathlib import Path

from infomtl.errors import ConfigError, InfomtlError, first_line
from infomtl.version import __version__


def is_repo_id(name: str, namespaced: bool = True) -> bool:
    """Whether ``name`` has the Hub's repo id syntax (:func:`huggingface_hub.utils.validate_repo_id`);
    with ``namespaced``, also exactly one ``/`` (``namespace/name``), as every repo ``infomtl push``
    writes has, so that a bare mistyped folder name stays a missing folder."""
    from huggingface_hub.errors import HFValidationError
    from huggingface_hub.utils import validate_repo_id

    if namespaced and name.count("/") != 1:
        return False
    try:
        validate_repo_id(name)
    except HFValidationError:
        return False
    return True


def resolve_model(source: str | Path, revision: str | None = None) -> Path:
    """The local folder of ``source``: itself when it exists, else the cached snapshot of the
    Hub repo it names (see the module docstring). A name that is neither comes back as it is,
    for the caller's "no such folder" error.

    Raises:
        ConfigError: ``revision`` given with a local folder (it pins a Hub repo only).
        InfomtlError: a repo id whose snapshot cannot be had, in one line.
    """
    path = Path(source)
    if path.exists() or not is_repo_id(str(source)):
        if revision is not None:
            raise ConfigError(f"--revision {revision}: pins a Hugging Face Hub repo, but {path} is a local "
                              "path" + ("" if path.exists() else " (and no such folder)"))
        return path
    return Path(download(str(source), revision))


def download(repo_id: str, revision: str | None = None) -> str:
    """The snapshot folder of ``repo_id`` at ``revision`` (:func:`huggingface_hub.snapshot_download`:
    from the cache when it holds it, else from the Hub unless offline)."""
    from huggingface_hub import constants, snapshot_download
    from huggingface_hub.errors import (
        GatedRepoError,
        HfHubHTTPError,
        LocalEntryNotFoundError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    at = f" at revision {revision}" if revision else ""
    where = f"{repo_id}: no such local folder, and the Hugging Face Hub repo {repo_id}{at}"
    try:
        return str(snapshot_download(repo_id, revision=revision, library_name="infomtl",
                                     library_version=__version__))
    except LocalEntryNotFoundError as exc:
        if constants.is_offline_mode():
            raise InfomtlError(f"{where} is not in the Hugging Face cache ({constants.HF_HUB_CACHE}) and "
                               "HF_HUB_OFFLINE is set: download it once online, or unset HF_HUB_OFFLINE") from None
        raise InfomtlError(f"{where} is not in the cache ({constants.HF_HUB_CACHE}) and the Hub cannot be "
                           f"reached ({_cause(exc)})") from None
    except RevisionNotFoundError:
        raise InfomtlError(f"{where}: no such revision (a branch, tag or commit of the repo)") from None
    except GatedRepoError:
        raise InfomtlError(f"{where} is gated: accept its conditions on the Hub, and set HF_TOKEN") from None
    except RepositoryNotFoundError:
        raise InfomtlError(f"{where} does not exist, or is private (set HF_TOKEN or run `hf auth login`)") from None
    except HfHubHTTPError as exc:
        raise InfomtlError(f"{where}: the Hub answered {_cause(exc)}") from None
    except OSError as exc:  # the cache folder not writable, disk full
        raise InfomtlError(f"{where}: cannot download ({exc.strerror or exc})") from None


def _cause(exc: BaseException) -> str:
    """The first line of what the Hub client said (through to the error that caused it)."""
    inner = exc.__cause__ or exc
    return f"{type(inner).__name__}: {first_line(inner, 200)}" if str(inner).strip() else type(inner).__name__
