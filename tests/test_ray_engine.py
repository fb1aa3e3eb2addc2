"""``infomtl sweep --engine ray`` against a real local Ray instance (2 CPUs, no dashboard,
its session files under the test's temporary folder): a worker killed mid-run reported
failed and resumed by the next sweep, with the local engine's run ids and metrics in the
end; a task's error in one line; a SIGINT that stops the sweep at the runs' next step.

One Ray instance serves the module; its start and every sweep run under a SIGALRM
deadline, so a Ray that does not come up fails the tests instead of hanging them."""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import yaml

from infomtl.cli import main
from infomtl.errors import Interrupted
from infomtl.experiments.plan import load_sweep
from infomtl.experiments.sweep import RayOptions, run_sweep

ray = pytest.importorskip("ray", reason="Ray is not installed (pip install 'infomtl[ray]')")

pytestmark = pytest.mark.usefixtures("one_thread")

#: Seconds Ray may take to start, and a sweep to end, before the test fails.
START_S, SWEEP_S = 120, 240
BASE = {
    "benchmark": "synthetic", "backbone": "tiny", "max_length": 32, "batch_size": 16, "epochs": 3,
    "max_train_examples": 48, "max_eval_examples": 24, "lr": 2e-3, "progress": False, "patience": 0,
}
METHODS = [{"method": "ew"}, {"method": "infomtl"}]
TIMING = ("train_time_s", "epoch_time_s")


@contextmanager
def _deadline(seconds: int, what: str) -> Iterator[None]:
    """Fail with TimeoutError if the block takes over ``seconds`` (SIGALRM, main thread)."""
    def fire(signum, frame):
        raise TimeoutError(f"{what} took over {seconds} s")

    previous = signal.signal(signal.SIGALRM, fire)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


@pytest.fixture(scope="module")
def local_ray(tmp_path_factory) -> Iterator[Path]:
    """A local Ray instance for the module; its session folder (logs, sockets, spilled
    objects) under a temporary folder, never /tmp/ray or the home folder."""
    temp = tmp_path_factory.mktemp("ray")
    env = {"RAY_TMPDIR": str(temp), "RAY_USAGE_STATS_ENABLED": "0"}
    before = {name: os.environ.get(name) for name in env}
    os.environ.update(env)
    try:
        with _deadline(START_S, "ray.init"):
            ray.init(num_cpus=2, include_dashboard=False, _temp_dir=str(temp), log_to_driver=False,
                     configure_logging=False)
            # both workers import the engine's task at once, not each at its first run
            # (a function of this fixture: Ray ships it by value, the test module is not on the workers' path)
            def import_sweep() -> None:
                import infomtl.experiments.sweep  # noqa: F401 - the import is the work

            ray.get([ray.remote(num_cpus=1)(import_sweep).remote() for _ in range(2)])
        yield temp
    finally:
        ray.shutdown()
        for name, value in before.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _sweep(folder: Path, seeds=(0,), **base) -> Path:
    path = folder / "sweep.yaml"
    config = {"base": {**BASE, **base}, "methods": METHODS, "seeds": list(seeds)}
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return path


def _index(store: Path) -> list[dict]:
    """index.jsonl, every line of which must be a whole JSON object."""
    return [json.loads(line) for line in (store / "index.jsonl").read_text(encoding="utf-8").splitlines()]


def _results(store: Path, rid: str) -> dict:
    results = json.loads((store / "runs" / rid / "results.json").read_text(encoding="utf-8"))
    return {k: v for k, v in results.items() if k not in TIMING}


def _metrics(value, prefix: str = "") -> dict[str, float]:
    """Every number of a results.json (nested keys joined by '/'), timing left out."""
    if isinstance(value, dict):
        return {k: v for key, sub in value.items() if key not in TIMING
                for k, v in _metrics(sub, f"{prefix}{key}/").items()}
    if isinstance(value, list):
        return {k: v for i, sub in enumerate(value) for k, v in _metrics(sub, f"{prefix}{i}/").items()}
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return {prefix.rstrip("/"): float(value)}
    return {}


@pytest.fixture(scope="module")
def local_store(tmp_path_factory) -> Path:
    """The sweep trained by the local engine, in this process: the reference."""
    folder = tmp_path_factory.mktemp("local")
    summary = run_sweep(_sweep(folder), folder / "store")
    assert len(summary.finished) == 2 and not summary.failed
    return folder / "store"


def _ray_workers_running(name: str) -> list[int]:
    """The pids of this process's Ray workers running a task of function ``name`` (Ray titles
    them ``ray::<name>``); Linux /proc."""
    pids = []
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            title = (proc / "cmdline").read_bytes().split(b"\0")[0].decode(errors="replace")
            if title.startswith(f"ray::{name}") and _descends_from(int(proc.name), os.getpid()):
                pids.append(int(proc.name))
        except OSError:  # ended meanwhile
            continue
    return pids


def _descends_from(pid: int, ancestor: int) -> bool:
    while pid > 1:
        if pid == ancestor:
            return True
        stat = Path(f"/proc/{pid}/stat").read_text()
        pid = int(stat.rsplit(")", 1)[1].split()[1])  # the field after the command is the state, then the ppid
    return False


@pytest.mark.skipif(not Path("/proc/self/cmdline").is_file(), reason="finds Ray's worker processes in /proc")
def test_a_killed_worker_is_reported_failed_and_the_next_sweep_resumes_its_run(
        local_ray, local_store, tmp_path, capsys) -> None:
    """Two runs, one task at a time; the first run's worker is SIGKILLed after its first
    epoch. Both runs end with the local engine's ids and metrics: the second one trained
    under Ray without a hitch, the first one killed, then resumed by the next sweep."""
    path, store = _sweep(tmp_path), tmp_path / "store"
    ids = [run.run_id for run in load_sweep(path)]
    killed: list[tuple[str, int]] = []

    def kill_after_first_epoch() -> None:  # one task at a time (2 CPUs a run): one worker to find
        deadline = time.monotonic() + SWEEP_S
        while time.monotonic() < deadline and not killed:
            for rid in ids:
                run = store / "runs" / rid
                if (run / "last" / "state.json").is_file() and not (run / "results.json").exists():
                    for pid in _ray_workers_running("run_one"):
                        os.kill(pid, signal.SIGKILL)
                        killed.append((rid, pid))
                    break
            time.sleep(0.01)

    killer = threading.Thread(target=kill_after_first_epoch, daemon=True)
    killer.start()
    with _deadline(SWEEP_S, "the Ray sweep"):
        summary = run_sweep(path, store, ray=RayOptions(cpus_per_run=2.0))
    killer.join(timeout=5)
    assert len(killed) == 1, killed
    victim, other = killed[0][0], next(rid for rid in ids if rid != killed[0][0])
    assert list(summary.failed) == [victim] and summary.finished == [other]
    assert summary.failed[victim].startswith("WorkerCrashedError: ") and "\n" not in summary.failed[victim]
    # the store: the finished run indexed once, the killed one resumable, nothing half-written
    assert [e["id"] for e in _index(store)] == [other]
    run = store / "runs" / victim
    assert not (run / "results.json").exists()
    state = json.loads((run / "last" / "state.json").read_text(encoding="utf-8"))
    assert state["epoch"] >= 1
    kept = (run / "log.jsonl").read_text(encoding="utf-8").splitlines()[:state["epoch"]]

    command = ["sweep", str(path), "--store", str(store), "--engine", "ray", "--cpus-per-run", "2"]
    with _deadline(SWEEP_S, "the resumed Ray sweep"):
        assert main(command) == 0
    assert "2 runs: 1 already finished, 1 trained, 0 failed" in capsys.readouterr().out
    assert sorted(e["id"] for e in _index(store)) == sorted(ids)  # each once, each line whole
    assert sorted(p.name for p in (store / "runs").iterdir()) == sorted(ids)
    # resumed, not restarted: the epochs before the kill are the first attempt's lines, timing included
    assert (run / "log.jsonl").read_text(encoding="utf-8").splitlines()[:state["epoch"]] == kept
    assert sorted(e["id"] for e in _index(local_store)) == sorted(ids)
    for rid in ids:  # seeded runs: the local engine's numbers
        ours, reference = _metrics(_results(store, rid)), _metrics(_results(local_store, rid))
        assert ours.keys() == reference.keys() and len(ours) > 10
        assert ours == pytest.approx(reference, rel=1e-5, abs=1e-6)
    assert list(local_ray.glob("session_*/logs"))  # Ray's files went where the fixture said


def test_a_task_that_raises_is_one_failed_line(local_ray, tmp_path) -> None:
    path, store = _sweep(tmp_path), tmp_path / "store"
    bad = load_sweep(path)[1].run_id
    (store / "runs").mkdir(parents=True)
    (store / "runs" / bad).write_text("not a run folder")  # run_one cannot remove it: NotADirectoryError
    with _deadline(SWEEP_S, "the Ray sweep"):
        summary = run_sweep(path, store, ray=RayOptions(), only=["infomtl"])
    assert list(summary.failed) == [bad] and not summary.finished
    error = summary.failed[bad]  # the task's own exception, not Ray's wrapper with the remote traceback
    assert error.startswith("NotADirectoryError: ") and str(store / "runs" / bad) in error
    assert "\n" not in error and "ray::" not in error and "\x1b" not in error
    assert not (store / "index.jsonl").exists()


def test_sigint_stops_the_ray_sweep_at_the_runs_next_step(local_ray, tmp_path) -> None:
    # runs long enough (90 steps) that none ends in the driver's poll between the signal and the cancel
    path, store = _sweep(tmp_path, seeds=(0, 1), epochs=30), tmp_path / "store"
    ids = [run.run_id for run in load_sweep(path)]

    def interrupt_when_a_run_started() -> None:
        deadline = time.monotonic() + SWEEP_S
        while time.monotonic() < deadline:
            if any((store / "runs" / rid / "log.jsonl").is_file() for rid in ids):
                os.kill(os.getpid(), signal.SIGINT)
                return
            time.sleep(0.01)

    threading.Thread(target=interrupt_when_a_run_started, daemon=True).start()
    started = time.monotonic()
    with _deadline(SWEEP_S, "the interrupted Ray sweep"), pytest.raises(Interrupted) as info:
        run_sweep(path, store, ray=RayOptions(cpus_per_run=1.0))
    assert info.value.signal_name == "SIGINT" and info.value.exit_status == 130
    assert "resume with: infomtl sweep" in str(info.value) and "--engine ray" in str(info.value)
    assert "last/ saved" in info.value.saved
    stopped = [rid for rid in ids if (store / "runs" / rid / "last").is_dir()
               and not (store / "runs" / rid / "results.json").exists()]
    assert stopped, "no run was stopped mid-way"
    assert not (store / "index.jsonl").exists() or len(_index(store)) < len(ids)
    assert time.monotonic() - started < SWEEP_S
