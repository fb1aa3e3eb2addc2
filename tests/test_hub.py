"""The Hub round trip, offline: ``infomtl push`` against a recording fake of ``HfApi``, and loading
by repo id from a Hugging Face cache laid out as huggingface_hub lays it out.

huggingface_hub reads ``HF_HUB_CACHE`` and ``HF_HUB_OFFLINE`` once, when it is imported; the
in-process tests set the environment and its ``constants`` alike, and one test runs the command
line in a subprocess with the environment alone, as a user would.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from huggingface_hub import constants, scan_cache_dir
from huggingface_hub.utils import filter_repo_objects

import infomtl
from fakes import small_config
from infomtl.cli import main
from infomtl.errors import ConfigError
from infomtl.inference.export import MANIFEST, export_run, verify_export
from infomtl.inference.hub import is_repo_id
from infomtl.training import train

pytestmark = pytest.mark.usefixtures("one_thread")

TEXTS = ["the food was great", "please answer soon", "the match ended late last night", "new phone, fast"]
TOKEN = "hf_infomtlTestToken0123456789abcdef"
COMMIT_A, COMMIT_B = "a" * 40, "b" * 40


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    return train(small_config(tmp_path_factory.mktemp("hub") / "run", method="infomtl", lr=1e-3)).run_dir


@pytest.fixture(scope="module")
def exported(run_dir, tmp_path_factory) -> Path:
    return export_run(run_dir, tmp_path_factory.mktemp("hub-export") / "model")


@pytest.fixture(scope="module")
def other_export(tmp_path_factory) -> Path:
    """An export of another run (the topic task alone): another revision of the repo."""
    run = train(small_config(tmp_path_factory.mktemp("hub-other") / "run", tasks=["topic"], max_steps=2)).run_dir
    return export_run(run, tmp_path_factory.mktemp("hub-other-export") / "model")


def cache_snapshot(cache: Path, repo_id: str, commit: str, folder: Path, refs: tuple[str, ...] = ()) -> Path:
    """``folder`` as the snapshot ``commit`` of the model repo ``repo_id`` in the Hugging Face cache
    ``cache``, as huggingface_hub writes one: ``models--NS--NAME/blobs/<hash>`` holding the files,
    ``snapshots/<commit>/<path>`` relative symlinks to them, ``refs/<branch>`` holding the commit."""
    repo = cache / ("models--" + repo_id.replace("/", "--"))
    snapshot = repo / "snapshots" / commit
    for file in sorted(p for p in folder.rglob("*") if p.is_file()):
        data = file.read_bytes()
        blob = repo / "blobs" / hashlib.sha256(data).hexdigest()
        blob.parent.mkdir(parents=True, exist_ok=True)
        blob.write_bytes(data)
        link = snapshot / file.relative_to(folder)
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(os.path.relpath(blob, link.parent))
    for ref in refs:
        (repo / "refs").mkdir(parents=True, exist_ok=True)
        (repo / "refs" / ref).write_text(commit)
    return snapshot


@pytest.fixture
def offline_cache(tmp_path, monkeypatch, exported, other_export) -> Path:
    """A cache holding ``user/name``: main at COMMIT_A (``exported``), branch v2 at COMMIT_B
    (``other_export``); HF_HUB_OFFLINE on, HF_HUB_CACHE there (environment and constants)."""
    cache = tmp_path / "hf-cache"
    cache_snapshot(cache, "user/name", COMMIT_A, exported, refs=("main",))
    cache_snapshot(cache, "user/name", COMMIT_B, other_export, refs=("v2",))
    for name, value in (("HF_HUB_CACHE", str(cache)), ("HF_HUB_OFFLINE", True)):
        monkeypatch.setenv(name, "1" if value is True else str(value))
        monkeypatch.setattr(constants, name, value)
    monkeypatch.chdir(tmp_path)
    return cache


def _labels(predictions: list[dict]) -> list[dict[str, str]]:
    return [{task: p["label"] for task, p in row.items()} for row in predictions]


def test_the_cache_layout_is_huggingface_hubs(offline_cache) -> None:
    (repo,) = scan_cache_dir(offline_cache).repos
    assert repo.repo_id == "user/name" and repo.repo_type == "model"
    assert {r.commit_hash: set(r.refs) for r in repo.revisions} == {COMMIT_A: {"main"}, COMMIT_B: {"v2"}}


def test_load_by_repo_id_predicts_like_the_folder(offline_cache, exported) -> None:
    from_hub = infomtl.load("user/name")
    assert from_hub.source == offline_cache / "models--user--name" / "snapshots" / COMMIT_A
    assert from_hub.task_names == ["sentiment", "topic", "urgency"]
    assert _labels(from_hub.predict(TEXTS)) == _labels(infomtl.load(exported).predict(TEXTS))


def test_revision_pins_a_branch_or_a_commit(offline_cache, other_export) -> None:
    expected = _labels(infomtl.load(other_export).predict(TEXTS))
    for revision in ("v2", COMMIT_B):
        predictor = infomtl.load("user/name", revision=revision)
        assert predictor.task_names == ["topic"]
        assert predictor.source.name == COMMIT_B
        assert _labels(predictor.predict(TEXTS)) == expected
    assert infomtl.load("user/name", revision=COMMIT_A).task_names == ["sentiment", "topic", "urgency"]


def test_cli_predict_by_repo_id_and_revision(offline_cache, exported, tmp_path, capsys) -> None:
    (tmp_path / "in.txt").write_text("\n".join(TEXTS) + "\n", encoding="utf-8")
    assert main(["predict", str(exported), "--input", "in.txt"]) == 0
    local = capsys.readouterr().out
    assert main(["predict", "user/name", "--input", "in.txt"]) == 0
    assert capsys.readouterr().out == local
    assert main(["predict", "user/name", "--revision", "v2", "--input", "in.txt"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [list(r["predictions"]) for r in rows] == [["topic"]] * len(TEXTS)


def test_an_existing_local_path_wins_over_the_repo_id(offline_cache, other_export, tmp_path) -> None:
    shutil.copytree(other_export, tmp_path / "user" / "name")  # a folder user/name under the working folder
    assert infomtl.load("user/name").task_names == ["topic"]
    assert infomtl.load(tmp_path / "user" / "name").task_names == ["topic"]
    with pytest.raises(ConfigError, match="--revision v2: pins a Hugging Face Hub repo, but user/name is a local"):
        infomtl.load("user/name", revision="v2")


def test_what_is_a_repo_id() -> None:
    assert is_repo_id("user/name") and is_repo_id("my-org/model.v1_2")
    for name in ("model", "./user/name", "a/b/c", "/abs/path", "user/na me", "user/--x", "user/" + "x" * 100, ""):
        assert not is_repo_id(name), name
    assert is_repo_id("roberta-base", namespaced=False) and not is_repo_id("a/b/c", namespaced=False)


@pytest.mark.parametrize(("args", "message"), [
    (["user/missing"], "error: user/missing: no such local folder, and the Hugging Face Hub repo user/missing is "
                       "not in the Hugging Face cache"),
    (["user/name", "--revision", "v3"], "error: user/name: no such local folder, and the Hugging Face Hub repo "
                                        "user/name at revision v3 is not in the Hugging Face cache"),
    (["missing-folder"], "error: missing-folder: no such run or export folder"),
    (["./user/missing"], "error: user/missing: no such run or export folder"),
])
def test_what_cannot_be_had_offline_is_one_line(offline_cache, tmp_path, capsys, args, message) -> None:
    (tmp_path / "in.txt").write_text("a text\n", encoding="utf-8")
    assert main(["predict", *args, "--input", "in.txt"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(message) and err.count("\n") == 1, err
    if "cache" in message:
        assert "HF_HUB_OFFLINE is set" in err and str(offline_cache) in err


def test_serve_takes_a_repo_id_and_its_revision(offline_cache, exported, capsys) -> None:
    """The option reaches the loader: a repo not in the cache, and --revision with a local folder."""
    pytest.importorskip("fastapi")
    assert main(["serve", "user/missing", "--port", "0"]) == 2
    assert "user/missing: no such local folder, and the Hugging Face Hub repo" in capsys.readouterr().err
    assert main(["serve", str(exported), "--revision", "v2", "--port", "0"]) == 2
    err = capsys.readouterr().err
    assert "--revision v2: pins a Hugging Face Hub repo" in err and err.count("\n") == 1


def test_the_command_line_honours_the_hub_environment(exported, tmp_path) -> None:
    """A fresh process, configured by the environment only (as a user would)."""
    cache_snapshot(tmp_path / "cache", "user/name", COMMIT_A, exported, refs=("main",))
    (tmp_path / "in.txt").write_text("\n".join(TEXTS) + "\n", encoding="utf-8")
    env = {**os.environ, "HF_HUB_CACHE": str(tmp_path / "cache"), "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    got = subprocess.run([sys.executable, "-m", "infomtl", "predict", "user/name", "--input", "in.txt",
                          "--output-format", "tsv", "--precision", "fp32"], cwd=tmp_path, env=env,
                         capture_output=True, text=True, timeout=300)
    assert got.returncode == 0, got.stderr
    assert main(["predict", str(exported), "--input", str(tmp_path / "in.txt"), "--output-format", "tsv",
                 "--precision", "fp32", "--output", str(tmp_path / "local.tsv")]) == 0
    assert got.stdout == (tmp_path / "local.tsv").read_text(encoding="utf-8")


# --------------------------------------------------------------------------- push


class FakeHfApi:
    """Records ``create_repo``, ``create_branch`` and ``upload_folder``, and copies what an upload
    would send (the folder's files through huggingface_hub's own pattern filter) to ``store``."""

    calls: list[tuple[str, dict]] = []
    store: Path

    def __init__(self, **kwargs) -> None:
        self.calls.append(("init", kwargs))

    def create_repo(self, repo_id, **kwargs):
        self.calls.append(("create_repo", {"repo_id": repo_id, **kwargs}))
        return f"https://huggingface.co/{repo_id}"

    def create_branch(self, repo_id, **kwargs) -> None:
        self.calls.append(("create_branch", {"repo_id": repo_id, **kwargs}))

    def upload_folder(self, *, repo_id, folder_path, **kwargs):
        self.calls.append(("upload_folder", {"repo_id": repo_id, "folder_path": folder_path, **kwargs}))
        folder = Path(folder_path)
        files = [p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()]
        for name in filter_repo_objects(files, allow_patterns=kwargs.get("allow_patterns"),
                                        ignore_patterns=kwargs.get("ignore_patterns")):
            (self.store / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(folder / name, self.store / name)

        class Info:
            oid = "c" * 40
            commit_url = f"https://huggingface.co/{repo_id}/commit/{'c' * 40}"

        return Info()


@pytest.fixture
def fake_api(tmp_path, monkeypatch):
    import huggingface_hub

    monkeypatch.setattr(FakeHfApi, "calls", [])
    monkeypatch.setattr(FakeHfApi, "store", tmp_path / "uploaded", raising=False)
    monkeypatch.setattr(huggingface_hub, "HfApi", FakeHfApi)
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    return FakeHfApi


def test_push_a_run_uploads_a_valid_export_and_never_the_token(run_dir, exported, fake_api, capsys) -> None:
    args = ["push", str(run_dir), "user/name", "--private", "--revision", "dev", "--commit-message", "first",
            "--license", "apache-2.0"]
    assert main(args) == 0
    out, err = capsys.readouterr()
    assert out.splitlines()[0] == (f"pushed {run_dir} to https://huggingface.co/user/name (revision dev, commit "
                                   f"{'c' * 40}): https://huggingface.co/user/name/commit/{'c' * 40}")
    names = [name for name, _ in fake_api.calls]
    assert names == ["init", "create_repo", "create_branch", "upload_folder"]
    calls = dict(fake_api.calls)
    assert calls["create_repo"] == {"repo_id": "user/name", "private": True, "exist_ok": True}
    assert calls["create_branch"] == {"repo_id": "user/name", "branch": "dev", "exist_ok": True}
    upload = calls["upload_folder"]
    assert upload["revision"] == "dev" and upload["commit_message"] == "first"
    assert not Path(upload["folder_path"]).exists()  # the temporary export is gone
    assert all("token" not in kwargs for _, kwargs in fake_api.calls)  # the client's own token
    uploaded = fake_api.store
    manifest = verify_export(uploaded)
    assert sorted(p.relative_to(uploaded).as_posix() for p in uploaded.rglob("*") if p.is_file()) == sorted(
        [*manifest["files"], MANIFEST])
    assert _labels(infomtl.load(uploaded).predict(TEXTS)) == _labels(infomtl.load(exported).predict(TEXTS))
    assert "license: apache-2.0" in (uploaded / "README.md").read_text(encoding="utf-8")
    for file in uploaded.rglob("*"):
        assert not file.is_file() or TOKEN.encode() not in file.read_bytes(), file
    assert TOKEN not in out + err


def test_push_an_export_sends_its_manifests_files_only(exported, tmp_path, fake_api, capsys) -> None:
    folder = shutil.copytree(exported, tmp_path / "export")
    (folder / "notes.txt").write_text("not part of the export", encoding="utf-8")
    assert main(["push", str(folder), "user/name"]) == 0
    calls = dict(fake_api.calls)
    assert "create_branch" not in calls and calls["upload_folder"]["revision"] == "main"
    assert calls["create_repo"]["private"] is False
    assert calls["upload_folder"]["commit_message"].startswith("infomtl export (")
    assert not (fake_api.store / "notes.txt").exists() and (fake_api.store / "heads.safetensors").is_file()
    assert "load it with infomtl.load('user/name')" in capsys.readouterr().out
    assert main(["push", str(folder), "user/name", "--license", "mit"]) == 2
    assert "was written with license other" in capsys.readouterr().err


@pytest.mark.parametrize(("args", "message"), [
    (["RUN", "justaname"], "error: justaname: not a Hub repo id; expected NAMESPACE/NAME"),
    (["MISSING", "user/name"], "no such run or export folder"),
    (["EMPTY", "user/name"], "not a run folder (no checkpoint/) nor an export folder (no infomtl.json)"),
])
def test_push_refuses_bad_arguments_in_one_line(run_dir, tmp_path, fake_api, capsys, args, message) -> None:
    (tmp_path / "empty").mkdir()
    where = {"RUN": str(run_dir), "MISSING": str(tmp_path / "missing"), "EMPTY": str(tmp_path / "empty")}
    assert main(["push", *[where.get(a, a) for a in args]]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1
    assert fake_api.calls == []


def test_push_without_a_token_is_one_line(exported, tmp_path, fake_api, monkeypatch, capsys) -> None:
    for name in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HF_OIDC_RESOURCE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(constants, "HF_TOKEN_PATH", str(tmp_path / "no-token"))
    assert main(["push", str(exported), "user/name"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: no Hugging Face token: set HF_TOKEN") and err.count("\n") == 1
    assert fake_api.calls == []


def test_push_without_a_network_is_one_line(exported, monkeypatch, capsys) -> None:
    """The real client against a closed local port, then in offline mode."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    monkeypatch.setattr(constants, "ENDPOINT", f"http://127.0.0.1:{port}")
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)  # CI runs with HF_HUB_OFFLINE=1
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    assert main(["push", str(exported), "user/name"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: push to user/name: cannot reach the Hugging Face Hub (ConnectError")
    assert err.count("\n") == 1 and TOKEN not in err
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    assert main(["push", str(exported), "user/name"]) == 2
    err = capsys.readouterr().err
    assert "cannot reach the Hugging Face Hub (OfflineModeIsEnabled" in err and err.count("\n") == 1
