"""Frozen-backbone fast mode: pooled features ``f = pool(encoder(x))`` computed once, cached on disk.

With ``--freeze-backbone`` the encoder never changes, so ``f`` of every row is computed
once and reused by every run, method and seed; the shared encoder that trains is a
:class:`~infomtl.modeling.model.SharedMLP` above it (``h = MLP(f)``, built in
:mod:`infomtl.modeling.building`), so every method runs unchanged (InfoMTL's two views
differ by the MLP's dropout, PCGrad projects the MLP's gradients). Token-state heads
(``stl-cnn``) need every token, so for them the encoder runs on each step instead.

Cache (``--feature-cache``, default ``$XDG_CACHE_HOME/infomtl/features``; ``docs/training.md``):
one safetensors file per split, named by the SHA-256 of everything ``f`` depends on
(encoder weights, tokenizer, pooling, max length, extraction dtype, the split's texts and
pairs). Rules kept here:

* written to a temporary name and renamed; a ``filelock`` lock makes two processes take
  turns on a split (at most :data:`LOCK_TIMEOUT_S`);
* each file carries the SHA-256 of its features: one that does not match is recomputed
  with a warning, never used; a cache that cannot be written is a warning, the features
  stay in memory;
* whole splits are extracted; a subsampled split takes its rows' features by content;
* ``layers=True`` (``--share layer-mix``, ``--head-layer``) caches every layer's pooled
  states ``(N, L + 1, d)`` under a key of its own, from which a last-layer run also reads;
* extraction checks ``stop`` before every batch and raises
  :class:`~infomtl.errors.Interrupted`, writing nothing for that split.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import signal
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from filelock import FileLock, Timeout
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file
from tqdm.auto import tqdm

from infomtl.data.encoding import EncodedSplit, collate, encode
from infomtl.data.types import TaskData
from infomtl.errors import InfomtlError, Interrupted
from infomtl.fileio import WriteError, match_umask, writing
from infomtl.modeling.backbones import Backbone, pool

log = logging.getLogger(__name__)

#: Bumped when the way features are computed changes (invalidates old cache files).
FORMAT_VERSION = 1
#: Autocast dtype of each ``--mixed-precision`` value.
AUTOCAST = {"no": None, "bf16": torch.bfloat16, "fp16": torch.float16}
#: Padded tokens per extraction batch.
EXTRACT_TOKENS = 16384
#: Seconds a process waits for another one's extraction (the cache folder's lock) before giving up.
LOCK_TIMEOUT_S = 3600.0

#: What ``stop`` returns: the number of a signal that asked for a stop, or None.
StopCheck = Callable[[], "int | None"]


def _no_stop() -> int | None:
    return None


def default_cache_dir() -> Path:
    """``$XDG_CACHE_HOME/infomtl/features``, or ``~/.cache/infomtl/features``."""
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "infomtl" / "features"


def backbone_fingerprint(backbone: Backbone, legacy: bool = False) -> str:
    """SHA-256 of what a pooled feature depends on besides the text: encoder weights
    (names, dtypes, shapes, bytes), the tokenizer, the pooling and the max length.
    ``legacy``: the tokenizer as earlier versions hashed it (with its last call's truncation
    and padding settings), to recognise the runs they recorded."""
    digest = hashlib.sha256(f"infomtl-features-{FORMAT_VERSION}".encode())
    for name, tensor in sorted(backbone.encoder.state_dict().items()):
        t = tensor.detach().cpu().contiguous()
        digest.update(f"{name}|{t.dtype}|{tuple(t.shape)}".encode())
        digest.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    backend = getattr(backbone.tokenizer, "backend_tokenizer", None)
    identity = backend.to_str() if legacy and backend is not None else tokenizer_identity(backbone.tokenizer)
    digest.update(identity.encode())
    digest.update(f"|{backbone.pooling}|{backbone.max_length}".encode())
    return digest.hexdigest()


def tokenizer_identity(tokenizer: Any) -> str:
    """The fast tokenizer's definition as JSON, without its ``truncation`` and ``padding``
    settings: the last call sets those, and they do not change what a text's tokens are
    (the cache's own extraction sets them itself)."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None:
        return repr(tokenizer)
    spec = json.loads(backend.to_str())
    spec.pop("truncation", None)
    spec.pop("padding", None)
    return json.dumps(spec, sort_keys=True)


def features_sha256(feats: torch.Tensor) -> str:
    """SHA-256 of a features tensor's bytes (stored in its cache file's metadata)."""
    return hashlib.sha256(feats.contiguous().numpy().data.cast("B")).hexdigest()  # no copy


def split_key(fingerprint: str, data: TaskData) -> str:
    """Cache key of one split: the backbone fingerprint and every input row."""
    digest = hashlib.sha256(fingerprint.encode())
    digest.update(f"|pair_first={data.pair_first}|n={len(data)}".encode())
    pairs = data.pairs if data.pairs is not None else [None] * len(data)
    for text, pair in zip(data.texts, pairs, strict=True):
        digest.update(f"{len(text)}:{text}|{'' if pair is None else f'{len(pair)}:{pair}'}\n".encode())
    return digest.hexdigest()[:32]


@torch.inference_mode()
def extract(backbone: Backbone, data: TaskData, device: torch.device | str = "cpu",
            desc: str | None = None, dtype: torch.dtype | None = None, layers: bool = False,
            stop: StopCheck = _no_stop) -> torch.Tensor:
    """Pooled features ``(N, d)``, or with ``layers`` ``(N, L + 1, d)`` for every layer
    (stored fp32, on the CPU) of a split: the frozen encoder
    in eval mode on length-sorted batches of at most :data:`EXTRACT_TOKENS` padded tokens,
    under autocast to ``dtype`` if given (bf16: several times faster on CPUs with
    AVX-512-BF16/AMX and on GPUs). ``stop`` is asked before every batch (module docstring)."""
    split = encode(data, backbone.tokenizer, backbone.max_length)
    tok = backbone.tokenizer
    pad_id = int(tok.pad_token_id if tok.pad_token_id is not None else 0)
    encoder = backbone.encoder
    was_training = encoder.training
    encoder.eval().to(device)
    device_type = torch.device(device).type
    lengths = split.lengths
    order = np.argsort(-lengths, kind="stable")
    out = torch.empty((len(split), *feature_shape(backbone, layers)), dtype=torch.float32)
    start = 0
    try:
        with tqdm(total=len(order), desc=desc, disable=desc is None, leave=False, dynamic_ncols=True,
                  unit="row") as bar:
            while start < len(order):
                signum = stop()
                if signum is not None:
                    name = signal.Signals(signum).name
                    raise Interrupted(name, f"features of {data.task.name}/{data.split} stopped after {start} of "
                                      f"{len(order)} rows (nothing written for that split)", "", 128 + signum)
                take = max(1, EXTRACT_TOKENS // max(1, int(lengths[order[start]])))
                idx = order[start : start + take]
                batch = collate([split], [idx], pad_id).to(device)
                kwargs = {"input_ids": batch.input_ids, "attention_mask": batch.attention_mask}
                if batch.token_type_ids is not None:
                    kwargs["token_type_ids"] = batch.token_type_ids
                with torch.autocast(device_type, dtype=dtype, enabled=dtype is not None):
                    result = encoder(**kwargs, output_hidden_states=layers)
                    if layers:
                        pooled = torch.stack([pool(x, batch.attention_mask, backbone.pooling)
                                              for x in result.hidden_states], dim=1)
                    else:
                        pooled = pool(result.last_hidden_state, batch.attention_mask, backbone.pooling)
                out[torch.from_numpy(idx)] = pooled.float().cpu()
                start += len(idx)
                bar.update(len(idx))
    finally:  # also when stopped: the encoder's mode is put back
        encoder.train(was_training)
    return out


def feature_shape(backbone: Backbone, layers: bool) -> tuple[int, ...]:
    """The shape of one row's features: ``(d,)``, or ``(L + 1, d)`` with ``layers``."""
    if not layers:
        return (backbone.hidden_size,)
    return (int(backbone.encoder.config.num_hidden_layers) + 1, backbone.hidden_size)


class FeatureCache:
    """Features of whole splits for one backbone, on disk under ``root`` (with ``layers``:
    every layer's, module docstring)."""

    def __init__(self, backbone: Backbone, root: str | Path | None = None,
                 device: torch.device | str = "cpu", progress: bool = True,
                 dtype: torch.dtype | None = None, layers: bool = False, stop: StopCheck = _no_stop) -> None:
        self.backbone = backbone
        self.stop = stop
        self.layers = layers
        self.root = Path(root) if root is not None else default_cache_dir()
        self.device = device
        self.progress = progress
        self.dtype = dtype
        self.fingerprint = backbone_fingerprint(backbone)

    def path(self, data: TaskData, layers: bool | None = None) -> Path:
        """The cache file of a split (the extraction dtype and ``layers`` are part of its name)."""
        key = self.fingerprint if self.dtype is None else f"{self.fingerprint}|{self.dtype}"
        key = f"{key}|layers" if (self.layers if layers is None else layers) else key
        return self.root / f"{split_key(key, data)}.safetensors"

    def cached(self, data: TaskData) -> bool:
        """Whether the cache holds a valid file for the split ``data``."""
        return self._read(self.path(data), len(data), warn=False) is not None

    def features(self, data: TaskData) -> torch.Tensor:
        """``(N, d)`` features of a whole split: read from the cache, or computed and cached."""
        path = self.path(data)
        cached = self._read(path, len(data))
        if cached is not None:
            return cached
        if not self.layers:  # every layer's features of the split hold the last layer's
            every = self._read(self.path(data, layers=True), len(data), warn=False, layers=True)
            if every is not None:
                return every[:, -1].contiguous()
        try:
            with writing(self.root):
                self.root.mkdir(parents=True, exist_ok=True)
        except WriteError as exc:
            log.warning("feature cache %s: %s; features are kept in memory for this run", self.root, exc.reason)
            return self._extract(data)
        with _lock(self.root / ".lock"):
            cached = self._read(path, len(data), warn=False)  # another process may have just written it
            if cached is not None:
                return cached
            feats = self._extract(data)
            try:
                self._write(path, data, feats)
            except WriteError as exc:
                log.warning("%s; features are kept in memory for this run", exc)
        return feats

    def _extract(self, data: TaskData) -> torch.Tensor:
        desc = f"features {data.task.name}/{data.split}" if self.progress else None
        return extract(self.backbone, data, self.device, desc, self.dtype, self.layers, self.stop)

    def _write(self, path: Path, data: TaskData, feats: torch.Tensor) -> None:
        tmp = path.with_name(path.name + f".{os.getpid()}.tmp")
        try:
            with writing(path):
                save_file({"features": feats}, str(tmp), metadata={
                    "task": data.task.name, "split": data.split, "backbone": self.backbone.spec,
                    "pooling": self.backbone.pooling, "max_length": str(self.backbone.max_length),
                    "dtype": str(self.dtype or torch.float32), "layers": str(self.layers),
                    "sha256": features_sha256(feats),
                })
                match_umask(tmp)
                os.replace(tmp, path)
        finally:
            with contextlib.suppress(OSError):
                tmp.unlink()

    def _read(self, path: Path, rows: int, warn: bool = True, layers: bool | None = None) -> torch.Tensor | None:
        """The features of a valid cache file; None for no file or one not to be used
        (unreadable, of another shape, or not matching its checksum)."""
        if not path.is_file():
            return None
        problem = None
        try:
            with safe_open(str(path), framework="pt", device="cpu") as fh:
                expected = (fh.metadata() or {}).get("sha256")
                feats = fh.get_tensor("features")
        except (SafetensorError, OSError, RuntimeError):
            problem, feats = "unreadable or truncated", None  # torn or foreign file
        if feats is not None:
            shape = (rows, *feature_shape(self.backbone, self.layers if layers is None else layers))
            if tuple(feats.shape) != shape:
                problem = f"of shape {tuple(feats.shape)}, expected {shape}"
            elif expected is None:
                problem = "without a checksum (written by an earlier infomtl)"
            elif features_sha256(feats) != expected:
                problem = "corrupt (its checksum does not match)"
        if problem is None:
            return feats
        if warn:
            log.warning("feature cache %s: %s; recomputing it", path, problem)
        return None

    def encoded(self, full: TaskData, part: TaskData) -> EncodedSplit:
        """The features split of ``part``, a subset of the rows of the whole split ``full``
        (itself, or a subsample): each row's feature is taken by its content."""
        feats = self.features(full)
        if part is not full:
            feats = feats[torch.from_numpy(_row_index(full, part))]
        return EncodedSplit([], None, part.labels, features=feats)


def _row_index(full: TaskData, part: TaskData) -> np.ndarray:
    """For each row of ``part``, a row of ``full`` with the same input (text and pair)."""
    full_pairs = full.pairs if full.pairs is not None else [None] * len(full)
    where = {(t, p): i for i, (t, p) in enumerate(zip(full.texts, full_pairs, strict=True))}
    part_pairs = part.pairs if part.pairs is not None else [None] * len(part)
    try:
        return np.fromiter((where[(t, p)] for t, p in zip(part.texts, part_pairs, strict=True)),
                           dtype=np.int64, count=len(part))
    except KeyError:
        raise InfomtlError(f"task {part.task.name}: a {part.split} row is not in the split it was "
                           "drawn from (feature cache)") from None


@contextlib.contextmanager
def _lock(path: Path) -> Iterator[None]:
    """An exclusive lock on ``path`` between processes (``filelock``: any platform), waited
    for at most :data:`LOCK_TIMEOUT_S`; in a folder this process cannot write (nothing will
    be written there either), no lock."""
    lock = FileLock(str(path), timeout=LOCK_TIMEOUT_S)
    try:
        lock.acquire()
        held = True
    except Timeout:  # before OSError: filelock's Timeout is a TimeoutError
        raise InfomtlError(f"{path}: another process has held the feature-cache lock for over "
                           f"{LOCK_TIMEOUT_S:g} s (extracting features?); wait for it, or stop it") from None
    except OSError:
        held = False
    try:
        yield
    finally:
        if held:
            lock.release()
