"""Self-contained export of a trained run: ``infomtl export RUN_DIR OUT``.

An export folder holds::

    encoder/                 the encoder (save_pretrained, safetensors) and its tokenizer
    heads.safetensors        the decoder (task heads, bottlenecks) and the method's tensors
    infomtl.json             format version, tasks, method, pooling, lengths, pair settings,
                             and the SHA-256 of every other file
    training-config.yaml     the config the run was trained with
    README.md                a model card with Hub metadata: tasks, method, backbone, metrics,
                             training command (:mod:`infomtl.inference.model_card`)

An STL run (one model per task) exports one such folder per task under ``OUT/<task>/``
with a top-level ``infomtl.json`` listing them (``"parts"``) and one model card.
``--format onnx`` (:mod:`infomtl.inference.onnx_export`) writes each model as one ONNX
graph and its tokenizer instead of ``encoder/`` and ``heads.safetensors``.

Loading (:func:`load_export_units`, used by :func:`infomtl.load`) checks every file
against its SHA-256 before use, reads tensors with safetensors only and JSON/YAML for
the rest: nothing is unpickled, and a changed or truncated file stops with an error
naming it. An export written by a later infomtl that this one cannot read says so, with
both versions ("written by infomtl 0.3.0, this is 0.1.0: upgrade infomtl to load it").
"""

from __future__ import annotations

import hashlib
import shutil
from collections.abc import Callable, Collection
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from infomtl.artifacts.run_folder import LoadedRun, RunFolder, load_run, newer_version_message, readable_by_this_version
from infomtl.config import TrainConfig, load_yaml
from infomtl.errors import ConfigError, InfomtlError
from infomtl.fileio import JSONError, loads_json, read_json, write_folder, write_json, write_text, writing
from infomtl.inference.model_card import DEFAULT_LICENSE, check_license, model_card
from infomtl.inference.onnx_units import load_onnx_unit
from infomtl.inference.units import ModelUnit, pair_modes
from infomtl.methods import Method, MethodSpec
from infomtl.modeling.backbones import load_backbone_files, quiet_transformers
from infomtl.modeling.building import build_sharing, sharing_spec
from infomtl.modeling.model import MultiTaskModel, SharedMLP
from infomtl.tasks import Task
from infomtl.version import __version__, is_newer

if TYPE_CHECKING:
    from transformers import PreTrainedModel

MANIFEST = "infomtl.json"
FORMAT = "infomtl-export"
FORMAT_VERSION = 1


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _checksums(folder: Path, skip: Collection[Path] = frozenset()) -> dict[str, str]:
    return {
        p.relative_to(folder).as_posix(): sha256_file(p)
        for p in sorted(folder.rglob("*"))
        if p.is_file() and p not in skip
    }


# --------------------------------------------------------------------------- export


def export_run(run_dir: str | Path, out_dir: str | Path, license: str | None = None,
               write_part: Callable[[Path, Path], dict[str, Any]] | None = None) -> Path:
    """Export a run (or STL) folder into the new folder ``out_dir`` (see the module docstring);
    ``license`` is the model card's, a Hub license id (default: ``other``, see
    :mod:`infomtl.inference.model_card`).

    The export is written to a temporary folder next to ``out_dir`` and renamed into
    place (:func:`~infomtl.fileio.write_folder`), so an interrupted or failed export leaves
    no half-written ``out_dir``; its files get the umask's permissions, model files included.
    ``write_part(run_dir, dest)`` writes one model's files and manifest into ``dest`` and
    returns the manifest (default: the safetensors weights; the ONNX graph:
    :func:`infomtl.inference.onnx_export.export_onnx`).
    """
    write_part = write_part or _export_single
    run_dir, out_dir = Path(run_dir), Path(out_dir)
    if not run_dir.is_dir():
        raise InfomtlError(f"{run_dir}: no such run folder")
    if out_dir.exists() and (not out_dir.is_dir() or any(out_dir.iterdir())):
        raise InfomtlError(f"{out_dir} already exists and is not empty; choose a new folder")
    run = RunFolder(run_dir)
    license = check_license(license or DEFAULT_LICENSE)

    def write(tmp: Path) -> None:
        if run.single_task:
            manifest: dict[str, Any] = {"format": FORMAT, "format_version": FORMAT_VERSION,
                                        "infomtl_version": __version__, "parts": {}}
            tasks = []
            for name, sub in run.parts().items():
                meta = write_part(sub, tmp / name)
                manifest["parts"][name] = name
                if "model_format" in meta:
                    manifest["model_format"] = meta["model_format"]
                tasks.extend(meta["tasks"])
            _write_common(run_dir, tmp, tasks, None, license)
            manifest["tasks"] = tasks
            # part folders are verified by their own manifests; list them here too
            manifest["files"] = _checksums(tmp)
            write_json(tmp / MANIFEST, manifest)
        else:
            meta = write_part(run_dir, tmp)
            _write_common(run_dir, tmp, meta["tasks"], meta["method"], license)
            meta["files"] = _checksums(tmp, {tmp / MANIFEST})
            write_json(tmp / MANIFEST, meta)

    write_folder(out_dir, write)
    return out_dir


def _write_common(run_dir: Path, dest: Path, tasks: list[dict[str, Any]],
                  manifest_method: dict[str, Any] | None, license: str) -> None:
    """The training config and the model card of an export."""
    with writing(dest / "training-config.yaml"):
        shutil.copyfile(run_dir / "config.yaml", dest / "training-config.yaml")
    write_text(dest / "README.md", model_card(run_dir, tasks, _read_results(run_dir), _config_dict(run_dir),
                                               manifest_method, license))


def _export_single(run_dir: Path, dest: Path) -> dict[str, Any]:
    """Write one run's encoder, heads and manifest into ``dest``; return the manifest."""
    run = load_run(run_dir)
    encoder_dir = dest / "encoder"
    with writing(encoder_dir), quiet_transformers():
        dest.mkdir(parents=True, exist_ok=True)
        cast("PreTrainedModel", run.model.encoder).save_pretrained(encoder_dir, safe_serialization=True)
        run.backbone.tokenizer.save_pretrained(encoder_dir)
    tensors = {k: v.detach().cpu().clone().contiguous()  # decoder.* (shared_mlp.*, sharing.* if any)
               for k, v in run.model.state_dict().items() if not k.startswith(("encoder.", "regularizer."))}
    tensors.update({f"method.{k}": v.detach().cpu().clone().contiguous()
                    for k, v in run.method.state_dict().items()})
    with writing(dest / "heads.safetensors"):
        save_file(tensors, str(dest / "heads.safetensors"), metadata={"format": FORMAT})
    manifest = run_manifest(run, run_dir)
    manifest["files"] = _checksums(dest)
    write_json(dest / MANIFEST, manifest)
    return manifest


def run_manifest(run: LoadedRun, run_dir: Path) -> dict[str, Any]:
    """The manifest of one exported model, without its file checksums."""
    meta = read_json(run_dir / "run.json")
    cfg = run.config
    manifest: dict[str, Any] = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "infomtl_version": __version__,
        "tasks": [t.to_dict() for t in run.tasks],
        "method": run.spec.to_dict(),
        "method_state": run.state.get("method_state", {}),
        "backbone": cfg.model.backbone,
        "pooling": cfg.model.pooling,
        "max_length": cfg.model.max_length,
        "chunk_tokens": cfg.model.chunk_tokens,
        "head_dropout": cfg.model.head_dropout,
        "head_hidden": cfg.model.head_hidden,
        "freeze_backbone": cfg.model.freeze_backbone,
        "shared_mlp": ({"width": cfg.model.mlp_width, "dropout": cfg.model.mlp_dropout}
                       if run.model.shared_mlp is not None else None),
        "train_sizes": [int(n) for n in meta["train_sizes"]],
        "sharing": sharing_spec(cfg, [t.name for t in run.tasks]),
        "pairs": pair_modes(cfg, run.tasks, run_dir),
        "checkpoint": {k: run.state[k] for k in ("epoch", "step", "select_by", "score") if k in run.state},
    }
    return manifest


def _read_results(run_dir: Path) -> dict[str, Any]:
    path = run_dir / "results.json"
    return read_json(path) if path.is_file() else {}


def _config_dict(run_dir: Path) -> dict[str, Any]:
    """The run's options by key (its ``config.yaml`` by section, or flat as older runs wrote it)."""
    path = run_dir / "config.yaml"
    return TrainConfig.from_dict(load_yaml(path), str(path)).to_dict()


# --------------------------------------------------------------------------- loading


def verify_export(folder: Path) -> dict[str, Any]:
    """Read ``folder/infomtl.json`` and check every file it lists; return the manifest."""
    path = folder / MANIFEST
    try:
        manifest = loads_json(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InfomtlError(f"{path}: file not found (not an infomtl export folder)") from None
    except (JSONError, UnicodeDecodeError) as exc:
        raise InfomtlError(f"{path}: not valid JSON, changed or truncated ({exc})") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise InfomtlError(f"{path}: not an infomtl export manifest")
    version, writer = manifest.get("format_version"), manifest.get("infomtl_version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        if is_newer(writer):
            raise InfomtlError(f"{newer_version_message(folder, str(writer), 'load')} "
                               f"(export format {version!r}, this infomtl reads {FORMAT_VERSION})")
        raise InfomtlError(
            f"{path}: export format version {version!r} is newer than this infomtl reads "
            f"({FORMAT_VERSION}); upgrade infomtl"
        )
    files = manifest.get("files")
    if not isinstance(files, dict) or not files:
        raise InfomtlError(f"{path}: no file checksums")
    for name, expected in files.items():
        file = folder / name
        if ".." in Path(name).parts or Path(name).is_absolute():
            raise InfomtlError(f"{path}: bad file name {name!r}")
        if not file.is_file():
            raise InfomtlError(f"{file}: missing from the export")
        if sha256_file(file) != expected:
            raise InfomtlError(f"{file}: checksum mismatch (file changed or truncated)")
    return manifest


def load_export_units(folder: str | Path) -> list[ModelUnit]:
    """The predictor units of an export folder (one, or one per STL part)."""
    folder = Path(folder)
    manifest = verify_export(folder)
    if "parts" in manifest:
        parts = manifest["parts"]
        if not isinstance(parts, dict) or not parts:
            raise InfomtlError(f"{folder / MANIFEST}: malformed 'parts'")
        units = []
        for sub in parts.values():
            units.extend(load_export_units(folder / str(sub)))
        return units
    writer = manifest.get("infomtl_version")
    with readable_by_this_version(folder, None if writer is None else str(writer)):
        model_format = manifest.get("model_format", "safetensors")
        if model_format == "onnx":
            return [load_onnx_unit(folder, manifest)]
        if model_format != "safetensors":
            raise InfomtlError(f"{folder / MANIFEST}: unknown model_format {model_format!r} "
                               "(this infomtl reads safetensors and onnx)")
        return [_load_single(folder, manifest)]


def _load_single(folder: Path, manifest: dict[str, Any]) -> ModelUnit:
    where = folder / MANIFEST
    try:
        tasks = [Task.from_dict(t) for t in manifest["tasks"]]
        spec = MethodSpec.from_dict(manifest["method"])
        train_sizes = [int(n) for n in manifest["train_sizes"]]
        pooling, max_length = str(manifest["pooling"]), int(manifest["max_length"])
        chunk_tokens = int(manifest.get("chunk_tokens", 0))
        head_dropout = float(manifest.get("head_dropout", 0.0))
        head_hidden = int(manifest.get("head_hidden", 0))
        pairs = {str(k): str(v) for k, v in manifest.get("pairs", {}).items()}
        mlp_spec = manifest.get("shared_mlp")
        mlp_width = int(mlp_spec["width"]) if mlp_spec else 0
        mlp_dropout = float(mlp_spec["dropout"]) if mlp_spec else 0.0
        sharing_entry = manifest.get("sharing") or {"share": "none", "share_layers": 1, "head_layers": {}}
    except (KeyError, TypeError, ValueError, AttributeError) as exc:  # e.g. "method": 5
        raise InfomtlError(f"{where}: malformed ({exc})") from None
    backbone = load_backbone_files(folder / "encoder", str(manifest.get("backbone", "")), pooling, max_length)
    shared_mlp = SharedMLP(backbone.hidden_size, mlp_width, mlp_dropout) if mlp_width else None
    method = Method(spec, tasks, mlp_width or backbone.hidden_size, train_sizes, head_dropout, head_hidden)
    try:
        sharing = build_sharing(sharing_entry, backbone.encoder, [t.name for t in tasks])
    except (ConfigError, KeyError, TypeError, ValueError, AttributeError) as exc:
        raise InfomtlError(f"{where}: malformed 'sharing' ({exc})") from None
    model = MultiTaskModel(backbone.encoder, method.build_decoder(), pooling, chunk_tokens,
                           shared_mlp=shared_mlp, sharing=sharing)
    weights = folder / "encoder" / "model.safetensors"
    heads = folder / "heads.safetensors"
    try:
        enc_state = load_file(str(weights), device="cpu")
        missing, unexpected = backbone.encoder.load_state_dict(enc_state, strict=False)
        if missing or unexpected:
            raise InfomtlError(
                f"{weights}: does not match the encoder config (missing {missing[:3]}, "
                f"unexpected {unexpected[:3]})"
            )
        tensors = load_file(str(heads), device="cpu")
        above = {k: v for k, v in tensors.items() if not k.startswith("method.")}
        own = {k[len("method."):]: v for k, v in tensors.items() if k.startswith("method.")}
        missing, unexpected = model.load_state_dict(above, strict=False)
        missing = [k for k in missing if not k.startswith("encoder.")]
        if missing or unexpected:
            raise InfomtlError(f"{heads}: does not match the manifest (missing {missing[:3]}, "
                               f"unexpected {unexpected[:3]})")
        method.load_state_dict(own)
    except FileNotFoundError as exc:
        raise InfomtlError(f"{folder}: incomplete export ({exc.filename} missing)") from None
    except (SafetensorError, OSError, RuntimeError) as exc:
        raise InfomtlError(f"{folder}: unreadable or truncated weights ({' '.join(str(exc).split())[:200]})") from None
    method.load_extra_state(manifest.get("method_state", {}))
    model.eval()
    method.eval()
    return ModelUnit(model, backbone.tokenizer, max_length, tasks, pairs)
