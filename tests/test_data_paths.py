"""Finding benchmark data, downloading TweetEval, and the benchmark registry."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from infomtl.data import load_benchmark, synthetic_benchmark
from infomtl.data.download import STANCE_TARGETS, download_tweeteval
from infomtl.data.paths import default_cache_root, resolve_benchmark_dir
from infomtl.data.tweeteval import load_tweeteval
from infomtl.errors import ConfigError, InfomtlError

# --------------------------------------------------------------------------- resolution


@pytest.fixture
def roots(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Path]:
    """Three roots (argument, environment, cache), none holding a benchmark yet."""
    paths = {name: tmp_path / name for name in ("arg", "env", "xdg")}
    for path in paths.values():
        path.mkdir()
    monkeypatch.setenv("INFOMTL_DATA", str(paths["env"]))
    monkeypatch.setenv("XDG_CACHE_HOME", str(paths["xdg"]))
    return paths


def test_cache_root_follows_xdg_then_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert default_cache_root() == tmp_path / "xdg" / "infomtl" / "data"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert default_cache_root() == tmp_path / "home" / ".cache" / "infomtl" / "data"


def test_resolution_order_is_argument_environment_cache(roots: dict[str, Path]) -> None:
    cache = roots["xdg"] / "infomtl" / "data"
    for root in (roots["arg"], roots["env"], cache):
        (root / "tweeteval").mkdir(parents=True)
    assert resolve_benchmark_dir("tweeteval", roots["arg"]) == roots["arg"] / "tweeteval"
    assert resolve_benchmark_dir("tweeteval") == roots["env"] / "tweeteval"
    (roots["env"] / "tweeteval").rmdir()
    assert resolve_benchmark_dir("tweeteval") == cache / "tweeteval"


@pytest.mark.parametrize("named", ["empty", "missing"])
def test_a_named_data_dir_is_the_only_place_looked(roots: dict[str, Path], named: str) -> None:
    """--data-dir without the benchmark is an error naming it, even when $INFOMTL_DATA or the
    cache holds the benchmark (no silent fallback to other data)."""
    (roots["env"] / "tweeteval").mkdir()
    (roots["xdg"] / "infomtl" / "data" / "tweeteval").mkdir(parents=True)
    folder = roots["arg"] if named == "empty" else roots["arg"] / "missing"
    with pytest.raises(InfomtlError) as info:
        resolve_benchmark_dir("tweeteval", folder)
    message = str(info.value)
    state = "holds no tweeteval/ folder" if named == "empty" else "does not exist"
    assert message.startswith(f"--data-dir {folder} {state} (looked for {folder / 'tweeteval'})")
    assert str(roots["env"]) not in message and "\n" not in message


def test_the_benchmark_folder_itself_is_accepted(roots: dict[str, Path]) -> None:
    folder = roots["arg"] / "tweeteval"
    folder.mkdir()
    assert resolve_benchmark_dir("tweeteval", folder) == folder


def test_not_found_lists_the_paths_tried_and_how_to_provide_data(roots: dict[str, Path]) -> None:
    with pytest.raises(InfomtlError) as info:
        resolve_benchmark_dir("tweeteval")
    message = str(info.value)
    assert "\n" not in message
    for root in (roots["env"], roots["xdg"] / "infomtl" / "data"):
        assert str(root / "tweeteval") in message
    assert "--data-dir" in message and "INFOMTL_DATA" in message
    assert "infomtl download tweeteval" in message
    with pytest.raises(InfomtlError) as info:
        resolve_benchmark_dir("affecteval")
    assert "download" not in str(info.value)


# --------------------------------------------------------------------------- download


def upstream_mirror(data_root: Path, dest: Path, tasks: tuple[str, ...]) -> Path:
    """A copy of the upstream ``datasets`` layout: stance split into per-target folders."""
    src = data_root / "tweeteval"
    for task in tasks:
        (dest / task).mkdir(parents=True)
        (dest / task / "mapping.txt").write_bytes((src / task / "mapping.txt").read_bytes())
        for split in ("train", "val", "test"):
            if task != "stance":
                for kind in ("text", "labels"):
                    name = f"{split}_{kind}.txt"
                    (dest / task / name).write_bytes((src / task / name).read_bytes())
                continue
            targets = (src / task / f"{split}_target.txt").read_text(encoding="utf-8").split("\n")
            for kind in ("text", "labels"):
                lines = (src / task / f"{split}_{kind}.txt").read_text(encoding="utf-8").split("\n")
                for target in STANCE_TARGETS:
                    rows = [line for line, t in zip(lines, targets, strict=True) if t == target]
                    (dest / task / target).mkdir(exist_ok=True)
                    (dest / task / target / f"{split}_{kind}.txt").write_text(
                        "".join(r + "\n" for r in rows), encoding="utf-8")
    return dest


def test_download_from_an_upstream_layout_merges_stance(data_root: Path, tmp_path: Path) -> None:
    mirror = upstream_mirror(data_root, tmp_path / "mirror", ("irony", "stance"))
    written: list[str] = []
    folder = download_tweeteval(tmp_path / "root", ["irony", "stance"],
                                base_url=mirror.as_uri(), progress=written.append)
    assert folder == tmp_path / "root" / "tweeteval"
    assert "stance/train_target.txt" in written
    got = load_tweeteval(folder, ["irony", "stance"])
    want = load_tweeteval(data_root / "tweeteval", ["irony", "stance"])
    for task in ("irony", "stance"):
        for split in ("train", "val", "test"):
            assert got[task][split].texts == want[task][split].texts
            assert got[task][split].labels.tolist() == want[task][split].labels.tolist()
    assert got["stance"]["test"].groups == want["stance"]["test"].groups
    assert (folder / "SOURCE.txt").read_text().splitlines() == [mirror.as_uri(), "tasks: irony, stance"]
    assert (folder / "stance" / "train_text.txt").read_bytes() == (
        data_root / "tweeteval" / "stance" / "train_text.txt").read_bytes()
    assert not list(folder.rglob("*.tmp"))
    assert resolve_benchmark_dir("tweeteval", tmp_path / "root") == folder


def test_download_from_a_merged_mirror(data_root: Path, tmp_path: Path) -> None:
    url = (data_root / "tweeteval").as_uri() + "/"
    folder = download_tweeteval(tmp_path, ["stance"], base_url=url)
    assert len(load_tweeteval(folder, ["stance"])["stance"]["train"]) == 2620


def test_download_names_a_file_missing_at_the_source(data_root: Path, tmp_path: Path) -> None:
    mirror = upstream_mirror(data_root, tmp_path / "mirror", ("irony",))
    (mirror / "irony" / "val_labels.txt").unlink()
    with pytest.raises(InfomtlError, match=r"irony/val_labels.txt: not found"):
        download_tweeteval(tmp_path / "root", ["irony"], base_url=mirror.as_uri())


def test_download_offline_is_a_one_line_error(tmp_path: Path) -> None:
    with pytest.raises(InfomtlError) as info:
        download_tweeteval(tmp_path, ["irony"], base_url="http://127.0.0.1:9/datasets", timeout=5)
    message = str(info.value)
    assert "http://127.0.0.1:9/datasets/irony/mapping.txt" in message and "offline" in message
    assert "\n" not in message


def test_download_rejects_an_unknown_task(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="emoji"):
        download_tweeteval(tmp_path, ["emoji"], base_url=tmp_path.as_uri())


# --------------------------------------------------------------------------- registry


def test_load_benchmark_tweeteval_with_task_selection(data_root: Path) -> None:
    data = load_benchmark("tweeteval", data_dir=data_root, tasks=["irony", "emotion"])
    assert data.task_names == ["irony", "emotion"]


def test_load_benchmark_unknown_name_lists_valid_ones() -> None:
    with pytest.raises(ConfigError, match="tweeteval, synthetic"):
        load_benchmark("glue")


def test_synthetic_benchmark_is_deterministic_and_shares_texts() -> None:
    a, b = synthetic_benchmark(seed=1), synthetic_benchmark(seed=1)
    assert a.task_names == ["sentiment", "topic", "urgency"]
    assert [len(a["topic"][s]) for s in ("train", "val", "test")] == [600, 150, 150]
    assert a["topic"]["train"].texts == a["sentiment"]["train"].texts == b["topic"]["train"].texts
    assert a["urgency"]["test"].labels.tolist() == b["urgency"]["test"].labels.tolist()
    assert synthetic_benchmark(seed=2)["topic"]["train"].texts != a["topic"]["train"].texts
    for task in a:
        assert set(a[task.name]["train"].labels.tolist()) == set(range(len(task.labels)))


def test_synthetic_via_registry_selects_tasks() -> None:
    data = load_benchmark("synthetic", tasks=["urgency", "topic"])
    assert data.task_names == ["urgency", "topic"]
    with pytest.raises(ConfigError, match="valid tasks: sentiment, topic, urgency"):
        load_benchmark("synthetic", tasks=["colour"])


def test_importing_the_data_package_does_not_import_torch() -> None:
    code = "import sys, infomtl.data; assert 'torch' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_the_default_download_is_pinned_to_one_commit() -> None:
    from infomtl.data.download import TWEETEVAL_COMMIT, TWEETEVAL_URL

    assert len(TWEETEVAL_COMMIT) == 40 and int(TWEETEVAL_COMMIT, 16) >= 0
    assert TWEETEVAL_URL == f"https://raw.githubusercontent.com/cardiffnlp/tweeteval/{TWEETEVAL_COMMIT}/datasets"
