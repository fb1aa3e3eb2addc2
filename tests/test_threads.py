"""``--threads``: the default from the affinity mask, the CPU quota and $OMP_NUM_THREADS;
a run sets it for its own duration and says it in the log."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import torch

import infomtl.threads as threads
from infomtl.config import TrainConfig
from infomtl.errors import ConfigError


@pytest.fixture
def four_cpus(monkeypatch, tmp_path):
    """A process allowed on CPUs 0-3, in a cgroup without a quota, without $OMP_NUM_THREADS."""
    monkeypatch.setattr(threads.os, "sched_getaffinity", lambda pid: {0, 1, 2, 3}, raising=False)
    monkeypatch.setattr(threads, "CGROUP_ROOT", tmp_path)
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    return tmp_path


def test_the_default_is_the_cpus_of_the_affinity_mask(four_cpus) -> None:
    assert threads.available_cpus() == 4
    assert threads.default_threads() == 4


@pytest.mark.parametrize(("omp", "expected"), [("2", 2), ("1", 1), ("8", 4), ("0", 4), ("many", 4), ("", 4)])
def test_omp_num_threads_caps_the_default(four_cpus, monkeypatch, omp: str, expected: int) -> None:
    monkeypatch.setenv("OMP_NUM_THREADS", omp)
    assert threads.default_threads() == expected


@pytest.mark.parametrize(("cpu_max", "expected"), [("150000 100000\n", 2), ("300000 100000\n", 3),
                                                   ("max 100000\n", 4), ("800000 100000\n", 4)])
def test_a_cgroup_v2_cpu_quota_caps_the_cpus(four_cpus: Path, cpu_max: str, expected: int) -> None:
    (four_cpus / "cpu.max").write_text(cpu_max)
    assert threads.available_cpus() == expected


def test_a_cgroup_v1_cpu_quota_caps_the_cpus(four_cpus: Path) -> None:
    (four_cpus / "cpu").mkdir()
    (four_cpus / "cpu" / "cpu.cfs_quota_us").write_text("100000\n")
    (four_cpus / "cpu" / "cpu.cfs_period_us").write_text("100000\n")
    assert threads.cpu_quota() == 1 and threads.available_cpus() == 1
    (four_cpus / "cpu" / "cpu.cfs_quota_us").write_text("-1\n")  # no quota
    assert threads.cpu_quota() is None and threads.available_cpus() == 4


def test_torch_threads_sets_and_restores(four_cpus, monkeypatch) -> None:
    before = torch.get_num_threads()
    with threads.torch_threads(1) as n:
        assert n == 1 and torch.get_num_threads() == 1
    assert torch.get_num_threads() == before
    monkeypatch.setenv("OMP_NUM_THREADS", "2")
    with threads.torch_threads() as n:
        assert n == 2 and torch.get_num_threads() == 2
    assert torch.get_num_threads() == before


def test_threads_must_be_at_least_one() -> None:
    with pytest.raises(ConfigError, match="--threads must be >= 1, got 0"):
        TrainConfig(threads=0).validate()
    assert TrainConfig.from_dict({"threads": "3"}).run.threads == 3


def test_a_run_uses_its_threads_and_says_so(tmp_path, caplog, one_thread) -> None:
    from fakes import small_config
    from infomtl.training import train

    torch.set_num_threads(1)
    with caplog.at_level(logging.INFO, logger="infomtl"):
        train(small_config(tmp_path / "run", threads=2, max_train_examples=16, max_eval_examples=8))
    assert torch.get_num_threads() == 1  # restored
    start = next(r.getMessage() for r in caplog.records if r.getMessage().startswith("training "))
    assert "on cpu (CPU threads: 2) ->" in start


@pytest.mark.parametrize(("load", "count", "note"), [
    (0.9, 2, None),  # only this process
    (1.4, 2, None),  # others keep less than half a CPU busy
    (2.0, 2, "--threads 1"),  # one busy process besides this one
    (7.4, 2, "--threads 1"),
    (7.4, 1, None),  # one thread never oversubscribes
])
def test_a_busy_machine_gets_a_note_naming_the_threads_that_fit(monkeypatch, load, count, note) -> None:
    monkeypatch.setattr(threads.os, "getloadavg", lambda: (load, load, load))
    monkeypatch.setattr(threads.os, "cpu_count", lambda: 2)
    got = threads.busy_note(count)
    if note is None:
        assert got is None
    else:
        assert got == (f"note: other processes keep about {load - 1:.1f} of this machine's 2 CPUs busy "
                       f"(load average {load:.1f}); {count} threads may run many times slower than {note}")


def test_on_a_large_machine_the_note_names_the_free_cpus(monkeypatch) -> None:
    monkeypatch.setattr(threads.os, "getloadavg", lambda: (7.4, 7.0, 7.0))
    monkeypatch.setattr(threads.os, "cpu_count", lambda: 64)
    assert threads.busy_note(58) is None
    assert threads.busy_note(64).endswith("64 threads may run many times slower than --threads 58")  # 6.4 busy
