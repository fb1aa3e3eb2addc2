"""The infomtl version a run or an export was written by: recorded, and a clear message to
upgrade when a later version wrote what this one cannot read."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml

from faults import one_error_line
from infomtl.cli import main
from infomtl.inference.export import MANIFEST
from infomtl.inference.predict import load
from infomtl.version import __version__, is_newer

LATER = "9.0.0"


def _written_by(run: Path, version: str | None, **config) -> Path:
    meta = json.loads((run / "run.json").read_text())
    if version is None:
        meta.pop("infomtl_version")
    else:
        meta["infomtl_version"] = version
    (run / "run.json").write_text(json.dumps(meta))
    if config:
        values = yaml.safe_load((run / "config.yaml").read_text())
        (run / "config.yaml").write_text(yaml.safe_dump({**values, **config}))
    return run


def test_run_folders_and_exports_record_the_version(tiny_run, tmp_path) -> None:
    assert json.loads((tiny_run / "run.json").read_text())["infomtl_version"] == __version__
    assert main(["export", str(tiny_run), str(tmp_path / "export")]) == 0
    assert json.loads((tmp_path / "export" / MANIFEST).read_text())["infomtl_version"] == __version__
    assert is_newer(LATER) and not is_newer(__version__) and not is_newer("0.0.1") and not is_newer("garbage")


def test_a_run_of_a_later_version_that_this_one_cannot_read_says_to_upgrade(tiny_run, tmp_path, capsys) -> None:
    run = _written_by(Path(shutil.copytree(tiny_run, tmp_path / "run")), LATER, a_later_option=1)
    assert main(["evaluate", str(run)]) == 2
    one_error_line(capsys.readouterr().err, f"{run}: written by infomtl {LATER}, this is {__version__}: "
                   "upgrade infomtl to load it", "unknown option: a_later_option")
    # the same files without a version: the plain error
    _written_by(run, None)
    assert main(["evaluate", str(run)]) == 2
    err = one_error_line(capsys.readouterr().err, "unknown option: a_later_option")
    assert "upgrade" not in err


def test_a_run_of_a_later_version_that_reads_fine_is_used(tiny_run, tmp_path) -> None:
    run = _written_by(Path(shutil.copytree(tiny_run, tmp_path / "run")), LATER)
    assert load(run).predict(["a text"])


def test_resuming_a_run_of_a_later_version_is_refused(tiny_run, tmp_path, capsys) -> None:
    run = _written_by(Path(shutil.copytree(tiny_run, tmp_path / "run")), LATER)
    (run / "results.json").unlink()
    assert main(["train", "--resume", str(run)]) == 2
    one_error_line(capsys.readouterr().err,
                   f"--resume {run}: written by infomtl {LATER}, this is {__version__}: upgrade infomtl to resume it")


@pytest.mark.parametrize("change", ["format", "field"])
def test_an_export_of_a_later_version_says_to_upgrade(tiny_run, tmp_path, capsys, change) -> None:
    out = tmp_path / "export"
    assert main(["export", str(tiny_run), str(out)]) == 0
    manifest = json.loads((out / MANIFEST).read_text())
    manifest["infomtl_version"] = LATER
    if change == "format":
        manifest["format_version"] += 1
    else:
        del manifest["pooling"]  # a later version may have moved it
    (out / MANIFEST).write_text(json.dumps(manifest))
    (tmp_path / "texts.txt").write_text("a text\n")
    capsys.readouterr()
    assert main(["predict", str(out), "--input", str(tmp_path / "texts.txt")]) == 2
    one_error_line(capsys.readouterr().err, f"{out}: written by infomtl {LATER}, this is {__version__}: "
                   "upgrade infomtl to load it")
