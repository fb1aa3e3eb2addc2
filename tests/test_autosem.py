"""AutoSeM (Guo et al., NAACL 2019): the Thompson sampler, the autosem and ratios regimes in the
trainer (logs, resume, selection on the primary task), the stage-2 search of mixing ratios,
the CLI on TweetEval, and the errors of bad options."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import yaml

from infomtl.artifacts.run_folder import resume_config
from infomtl.cli import main
from infomtl.config import TrainConfig
from infomtl.data.batching import Batcher
from infomtl.data.sampling import ThompsonSampler
from infomtl.errors import ConfigError, Interrupted
from infomtl.experiments import autosem as search
from infomtl.experiments.autosem import expected_improvement, propose_ratios, run_autosem
from infomtl.training import Trainer
from infomtl.training.autosem import AutoSemSteps
from test_resume import Crash, _config, _crash_at, _outcome
from test_signals import STEPS_PER_EPOCH, _signal_after

pytestmark = pytest.mark.usefixtures("one_thread")

TASKS = ("sentiment", "topic", "urgency")  # the synthetic benchmark's


# -- the sampler ------------------------------------------------------------------------------


def test_update_decays_every_arm_then_counts_the_reward_as_methods_md_says() -> None:
    bandit = ThompsonSampler(3)
    bandit.update(0, 1)
    assert bandit.alpha.tolist() == [2, 1, 1] and bandit.beta.tolist() == [1, 1, 1]
    bandit.update(1, 0)
    assert np.allclose(bandit.alpha, [1.7, 1, 1]) and np.allclose(bandit.beta, [1, 2, 1])
    assert np.allclose(bandit.means, [1.7 / 2.7, 1 / 3, 0.5])


def test_choose_draws_one_beta_per_arm_and_takes_the_largest() -> None:
    bandit = ThompsonSampler(4)
    bandit.alpha, bandit.beta = np.array([1.0, 5.0, 2.0, 0.5]), np.array([3.0, 1.0, 2.0, 0.5])
    rng, same = np.random.default_rng(3), np.random.default_rng(3)
    for _ in range(20):
        assert bandit.choose(rng) == int(np.argmax(same.beta(bandit.alpha, bandit.beta)))


def test_the_state_round_trips_through_json() -> None:
    bandit = ThompsonSampler(3)
    for arm, reward in ((0, 1), (2, 0), (1, 1)):
        bandit.update(arm, reward)
    other = ThompsonSampler(3)
    other.load_state_dict(json.loads(json.dumps(bandit.state_dict())))
    assert other.alpha.tolist() == bandit.alpha.tolist() and other.beta.tolist() == bandit.beta.tolist()
    with pytest.raises(ValueError, match="3 arms, this one 2"):
        ThompsonSampler(2).load_state_dict(bandit.state_dict())


@pytest.mark.parametrize(("make", "match"), [
    (lambda: ThompsonSampler(0), "at least one arm"),
    (lambda: ThompsonSampler(2, decay=0), "decay"),
    (lambda: ThompsonSampler(2, prior=(0, 1)), "prior"),
    (lambda: ThompsonSampler(2).update(2, 1), "arm 2"),
    (lambda: ThompsonSampler(2).update(0, 1.5), "reward"),
])
def test_bad_arguments_are_refused(make, match) -> None:
    with pytest.raises((ValueError, IndexError), match=match):
        make()


# -- the mechanism: the helpful task is drawn more often -----------------------------------------


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_thompson_sampling_draws_the_helpful_task_most_with_simulated_rewards(seed: int) -> None:
    """Arm 1 improves the primary score 80% of the time, arm 0 half the time, arm 2 20%."""
    rng, world = np.random.default_rng(seed), np.random.default_rng(100 + seed)
    bandit, draws, helps = ThompsonSampler(3), np.zeros(3, dtype=int), (0.5, 0.8, 0.2)
    for _ in range(400):
        arm = bandit.choose(rng)
        draws[arm] += 1
        bandit.update(arm, float(world.random() < helps[arm]))
    assert draws[1] > 1.5 * draws[0] and draws[0] > draws[2] and draws[1] > 2.5 * draws[2]
    assert bandit.means[1] > bandit.means[2]


def test_the_decay_lets_the_bandit_follow_a_task_whose_help_changes() -> None:
    rng, world = np.random.default_rng(0), np.random.default_rng(1)
    bandit, draws = ThompsonSampler(2), np.zeros((2, 2), dtype=int)
    for i in range(400):
        helps = (0.8, 0.2) if i < 200 else (0.2, 0.8)
        arm = bandit.choose(rng)
        draws[i // 200, arm] += 1
        bandit.update(arm, float(world.random() < helps[arm]))
    assert draws[0, 0] > 2 * draws[0, 1] and draws[1, 1] > 2 * draws[1, 0]


class SimulatedModel:
    """A primary score that each step of task t moves by ``effects[t]`` plus noise; the
    autosem rounds see only the score, as in training."""

    def __init__(self, effects: tuple[float, ...], seed: int = 0) -> None:
        self.effects, self.rng, self.value = effects, np.random.default_rng(seed), 50.0

    def train(self, plan: list[np.ndarray]) -> int:
        (task,) = [t for t, rows in enumerate(plan) if len(rows)]
        self.value += self.effects[task] + self.rng.normal(0, 1.0)
        return task

    def score(self) -> float:
        return self.value


@pytest.mark.parametrize("eval_every", [1, 3])
def test_autosem_rounds_draw_the_task_that_helps_the_primary_most_often(eval_every: int) -> None:
    """Primary (+0.3 a step), a helpful auxiliary task (+1) and a harmful one (−1)."""
    model = SimulatedModel((0.3, 1.0, -1.0))
    batcher = Batcher([np.full(n, 5) for n in (64, 64, 64)], 16, "autosem", seed=0)
    steps = AutoSemSteps(batcher, ["primary", "helper", "noise"], model.score, eval_every, seed=0)
    steps.begin()
    trained = np.zeros(3, dtype=int)
    for epoch in (1, 2, 3, 4, 5):
        for _ in range(batcher.steps_per_epoch()):
            trained[model.train(steps.plan(epoch))] += 1
            steps.after_step()
    assert trained.tolist() == steps.total  # what it counted is what it planned
    assert trained[1] > 2 * trained[2] and trained[1] > trained[0]
    means = steps.bandit.means
    assert means[1] > 0.5 > means[2]


def test_the_k_th_draw_of_a_task_trains_the_k_th_step_of_its_passes() -> None:
    batcher = Batcher([np.arange(10) % 4 + 1, np.full(7, 3)], 4, "autosem", seed=5)
    steps = batcher.task_steps(2, 0)
    first_pass = np.concatenate([steps[k][0] for k in range(3)])  # ceil(10 / 4) batches
    assert sorted(first_pass.tolist()) == list(range(10)) and all(len(steps[k][1]) == 0 for k in range(6))
    again = batcher.task_steps(2, 0)
    assert [again[k][0].tolist() for k in (5, 0, 4)] == [steps[k][0].tolist() for k in (5, 0, 4)]
    with pytest.raises(ValueError, match="while training"):
        batcher.epoch(1)


# -- the ratios regime ----------------------------------------------------------------------------


def test_the_ratios_regime_draws_tasks_in_proportion_and_never_one_of_ratio_zero() -> None:
    batcher = Batcher([np.full(n, 4) for n in (4000, 4000, 4000)], 8, "ratios", ratios=[3.0, 1.0, 0.0])
    plan = batcher.epoch(1)
    tasks = [next(t for t, rows in enumerate(step) if len(rows)) for step in plan]
    counts = np.bincount(tasks, minlength=3)
    assert len(plan) == 1500 and counts[2] == 0
    assert counts[0] / len(plan) == pytest.approx(0.75, abs=0.04)
    assert all(sum(len(rows) for rows in step) == 8 for step in plan)


@pytest.mark.parametrize("ratios", [None, [1.0], [0.0, 0.0], [1.0, -1.0]])
def test_the_ratios_regime_needs_one_ratio_per_task_not_all_zero(ratios) -> None:
    with pytest.raises(ValueError, match="ratio"):
        Batcher([np.ones(4), np.ones(4)], 2, "ratios", ratios=ratios)


# -- options ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(("options", "words"), [
    ({"regime": "ratios", "task_ratios": {"topic": "-1"}}, "--task-ratios: topic=-1 must be a number >= 0"),
    ({"regime": "ratios", "task_ratios": {"topic": "lots"}}, "--task-ratios: topic=lots must be a number"),
    ({"regime": "ratios"}, "--regime ratios needs --task-ratios"),
    ({"task_ratios": {"topic": 1}}, "--task-ratios is read by --regime ratios only"),
    ({"autosem_eval_every": 0}, "--autosem-eval-every must be >= 1"),
    ({"autosem_eval_rows": 0}, "--autosem-eval-rows must be >= 1"),
    ({"select_by": "primary"}, "--select-by primary needs --primary-task"),
    ({"primary_task": " "}, "--primary-task must name a task"),
])
def test_bad_options_are_one_line_errors_naming_the_option(options, words) -> None:
    with pytest.raises(ConfigError) as caught:
        TrainConfig(**options).validate()
    assert words in str(caught.value) and "\n" not in str(caught.value)


def test_task_ratios_from_the_command_line_become_numbers() -> None:
    config = TrainConfig.from_dict({"regime": "ratios", "task_ratios": "topic=0.25,urgency=1"}).validate()
    assert config.batching.task_ratios == {"topic": 0.25, "urgency": 1.0}


@pytest.mark.parametrize(("options", "words"), [
    ({"regime": "autosem", "primary_task": "sentimnet"},
     "--primary-task 'sentimnet' is not a task of this run (did you mean `sentiment`?)"),
    ({"regime": "ratios", "task_ratios": {"topik": 1}}, "--task-ratios: 'topik' is not a task of this run"),
    ({"regime": "autosem", "method": "pcgrad"}, "one task per step"),
    ({"regime": "autosem", "method": "stl"}, "no tasks to choose or mix; drop --regime autosem"),
    ({"primary_task": "topic", "method": "stl"}, "drop --primary-task"),
])
def test_options_that_do_not_fit_the_run_are_one_line_errors(tmp_path, capsys, options, words) -> None:
    args = ["train", "--benchmark", "synthetic", "--backbone", "tiny", "--max-train-examples", "32",
            "--no-progress", "--output-dir", str(tmp_path / "run")]
    for key, value in options.items():
        text = ",".join(f"{k}={v}" for k, v in value.items()) if isinstance(value, dict) else value
        args += [f"--{key.replace('_', '-')}", text]
    assert main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and words in err[0], err


# -- the trainer ------------------------------------------------------------------------------------


def _autosem(output_dir: Path, **overrides) -> TrainConfig:
    values = dict(regime="autosem", primary_task="sentiment", autosem_eval_every=2, autosem_eval_rows=24)
    values.update(overrides)
    return _config(output_dir, **values)


@pytest.fixture(scope="module")
def autosem_run(tmp_path_factory, one_thread) -> Path:
    return Trainer(_autosem(tmp_path_factory.mktemp("autosem") / "run")).run().run_dir


def _log(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "log.jsonl").read_text().splitlines()]


def test_an_autosem_run_logs_each_epochs_arms_draws_and_rounds(autosem_run: Path) -> None:
    log = _log(autosem_run)
    assert [r["epoch"] for r in log] == [1, 2, 3]
    rounds = 0
    for record in log:
        entry = record["autosem"]
        assert set(entry["arms"]) == set(entry["draws"]) == set(TASKS)
        assert sum(entry["draws"].values()) == STEPS_PER_EPOCH and entry["scored_on"] == "sentiment"
        rounds += entry["rounds"]
        assert rounds == record["step"] // 2  # a round every 2 steps, across epochs
        assert 0 <= entry["rewarded"] <= entry["rounds"]
        # Σ_t (α_t + β_t) after n rounds: s ← 0.7 s + 0.3·2T + 1 from s = 2T (T = 3)
        total = sum(a["alpha"] + a["beta"] for a in entry["arms"].values())
        assert total == pytest.approx(28 / 3 - 10 / 3 * 0.7**rounds)
        for arm in entry["arms"].values():
            assert arm["mean"] == pytest.approx(arm["alpha"] / (arm["alpha"] + arm["beta"]))
            assert arm["alpha"] >= 0.3 and arm["beta"] >= 0.3
    results = json.loads((autosem_run / "results.json").read_text())
    assert results["regime"] == "autosem" and results["autosem"]["arms"] == log[-1]["autosem"]["arms"]
    assert sum(results["autosem"]["steps"].values()) == 3 * STEPS_PER_EPOCH


def test_each_autosem_step_holds_one_task(tmp_path, monkeypatch) -> None:
    seen = []
    step = Trainer.train_step

    def record(self, plan, index=0):
        seen.append([len(rows) for rows in plan])
        return step(self, plan, index)

    monkeypatch.setattr(Trainer, "train_step", record)
    Trainer(_autosem(tmp_path / "run", epochs=1, autosem_eval_every=3)).run()
    assert len(seen) == STEPS_PER_EPOCH and all(sum(n > 0 for n in sizes) == 1 for sizes in seen)
    tasks = [next(t for t, n in enumerate(sizes) if n) for sizes in seen]
    assert all(len(set(tasks[i : i + 3])) == 1 for i in range(0, STEPS_PER_EPOCH, 3))  # one task a round


def test_the_same_seed_gives_the_same_autosem_run(autosem_run: Path, tmp_path) -> None:
    again = Trainer(_autosem(tmp_path / "again")).run().run_dir
    assert _outcome(again) == _outcome(autosem_run)


def test_resuming_an_autosem_run_after_a_crash_gives_the_same_arms_and_results(autosem_run, tmp_path) -> None:
    run_dir = tmp_path / "crashed"
    with _crash_at(2), pytest.raises(Crash):
        Trainer(_autosem(run_dir)).run()
    state = json.loads((run_dir / "last" / "state.json").read_text())
    assert state["epoch"] == 1 and state["autosem"]["bandit"]["alpha"] == list(
        _log(autosem_run)[0]["autosem"]["arms"][t]["alpha"] for t in TASKS)
    Trainer(resume_config(run_dir)).run()
    assert _outcome(run_dir) == _outcome(autosem_run)


def test_resuming_an_autosem_run_stopped_mid_round_equals_the_uninterrupted_run(autosem_run, tmp_path,
                                                                                monkeypatch) -> None:
    run_dir = tmp_path / "stopped"
    with monkeypatch.context() as m:
        _signal_after(m, STEPS_PER_EPOCH + 4)  # after step 4 of epoch 2: inside a round of 2
        with pytest.raises(Interrupted):
            Trainer(_autosem(run_dir)).run()
    state = json.loads((run_dir / "last" / "state.json").read_text())
    assert (state["epoch"], state["epoch_step"], state["autosem"]["round_step"]) == (1, 4, 1)
    Trainer(resume_config(run_dir)).run()
    assert _outcome(run_dir) == _outcome(autosem_run)


def test_select_by_primary_keeps_the_epoch_best_on_the_primary_task(tmp_path) -> None:
    run_dir = Trainer(_autosem(tmp_path / "run", select_by="primary")).run().run_dir
    per_epoch = [r["val"]["tasks"]["sentiment"]["macro_f1"] for r in _log(run_dir)]
    results = json.loads((run_dir / "results.json").read_text())
    assert results["best_epoch"] == 1 + int(np.argmax(per_epoch))
    assert results["val"]["scores"]["sentiment"] == pytest.approx(max(per_epoch))
    state = json.loads((run_dir / "checkpoint" / "state.json").read_text())
    assert state["select_by"] == "primary" and state["score"] == pytest.approx(max(per_epoch))


def test_a_ratios_run_trains_only_the_tasks_given_a_ratio(tmp_path, monkeypatch) -> None:
    seen = np.zeros(3, dtype=int)
    step = Trainer.train_step

    def record(self, plan, index=0):
        seen[:] += [len(rows) > 0 for rows in plan]
        return step(self, plan, index)

    monkeypatch.setattr(Trainer, "train_step", record)
    config = _config(tmp_path / "run", epochs=1, regime="ratios", task_ratios={"sentiment": 2, "urgency": 1})
    Trainer(config).run()
    assert seen[1] == 0 and seen.sum() == STEPS_PER_EPOCH and seen[0] > 0 and seen[2] > 0


# -- stage 2: the search of mixing ratios -------------------------------------------------------------


def test_expected_improvement_matches_the_closed_form() -> None:
    ei = expected_improvement(np.array([1.0, 0.0, 2.0]), np.array([1.0, 0.0, 0.5]), best=0.0, xi=0.0)
    # 1·Φ(1) + φ(1); std 0: 0; 2·Φ(4) + 0.5·φ(4)
    phi = lambda z: math.exp(-z * z / 2) / math.sqrt(2 * math.pi)  # noqa: E731
    cdf = lambda z: 0.5 * (1 + math.erf(z / math.sqrt(2)))  # noqa: E731
    assert ei.tolist() == pytest.approx([cdf(1) + phi(1), 0.0, 2 * cdf(4) + 0.5 * phi(4)])


def test_the_proposal_is_a_point_of_the_simplex_near_the_better_scores() -> None:
    rng = np.random.default_rng(0)
    points = rng.dirichlet(np.ones(3), size=6)
    scores = 100 * points[:, 0]  # the more of task 0, the better
    proposal = propose_ratios(points, scores, np.random.default_rng(1), candidates=500)
    assert proposal.shape == (3,) and proposal.min() >= 0 and proposal.sum() == pytest.approx(1)
    assert proposal[0] > points[:, 0].max() - 0.05
    again = propose_ratios(points, scores, np.random.default_rng(1), candidates=500)
    assert again.tolist() == proposal.tolist()


def _search_config(output_dir: Path, **overrides) -> TrainConfig:
    values = dict(primary_task="sentiment", autosem_eval_every=2, autosem_eval_rows=24, epochs=1, max_steps=4,
                  max_train_examples=48, lr=2e-3)
    values.update(overrides)
    return TrainConfig(**{**_config(output_dir).to_dict(), **values, "output_dir": str(output_dir)})


def test_the_search_starts_from_the_stage_1_means_and_keeps_the_best_trial(tmp_path, monkeypatch) -> None:
    folder = tmp_path / "search"
    result = run_autosem(_search_config(folder), trials=3, candidates=200)
    saved = json.loads((folder / "autosem.json").read_text())
    arms = json.loads((folder / "stage1" / "results.json").read_text())["autosem"]["arms"]
    means = np.array([arms[t]["mean"] for t in TASKS])
    first = saved["trials"][0]
    assert first["proposed_by"] == "stage 1" and [first["ratios"][t] for t in TASKS] == pytest.approx(
        (means / means.sum()).tolist(), abs=1e-6)
    assert [t["proposed_by"] for t in saved["trials"]] == ["stage 1", "gp-ei", "gp-ei"]
    for trial in saved["trials"]:
        assert sum(trial["ratios"].values()) == pytest.approx(1, abs=1e-5)
        results = json.loads((Path(trial["run_dir"]) / "results.json").read_text())
        assert results["regime"] == "ratios" and trial["score"] == results["val"]["scores"]["sentiment"]
    best = max(saved["trials"], key=lambda t: (t["score"], -t["number"]))
    assert saved["best"] == best and result.best.number == best["number"]
    options = yaml.safe_load((folder / "ratios.yaml").read_text())
    assert options["regime"] == "ratios" and options["task_ratios"] == best["ratios"]
    assert "output_dir" not in options and "threads" not in options
    TrainConfig.from_dict(options).validate()

    # run again: nothing is retrained; one more trial trains only that one
    trained = []
    real = search.train
    monkeypatch.setattr(search, "train", lambda config: trained.append(config.run.output_dir) or real(config))
    assert run_autosem(_search_config(folder), trials=3, candidates=200).to_dict() == saved
    assert trained == []
    run_autosem(_search_config(folder), trials=4, candidates=200)
    assert trained == [str(folder / "trial-4")]


@pytest.mark.parametrize(("options", "words"), [
    ({"regime": "mixed"}, "sets the regime of each run itself"),
    ({"tasks": ["topic"], "primary_task": "topic"}, "at least two"),
])
def test_the_search_refuses_what_it_cannot_do(tmp_path, options, words) -> None:
    with pytest.raises(ConfigError, match=words):
        run_autosem(_search_config(tmp_path / "s", **options), trials=1)


# -- the command line on TweetEval ---------------------------------------------------------------------


SMOKE = ("--backbone", "tiny", "--max-train-examples", "48", "--max-eval-examples", "40", "--batch-size", "16",
         "--max-length", "48", "--lr", "1e-3", "--no-progress", "--threads", "1")


def test_infomtl_train_runs_the_autosem_regime_on_tweeteval(data_root, tmp_path, capsys) -> None:
    out = tmp_path / "run"
    assert main(["train", "--tasks", "emotion,irony,hate", "--regime", "autosem", "--primary-task", "irony",
                 "--autosem-eval-every", "3", "--select-by", "primary", "--epochs", "2", "--data-dir",
                 str(data_root), "--output-dir", str(out), *SMOKE]) == 0
    log = _log(out)
    assert [sum(r["autosem"]["draws"].values()) for r in log] == [9, 9]  # 3 x ceil(48 / 16)
    assert log[-1]["autosem"]["scored_on"] == "irony" and sum(r["autosem"]["rounds"] for r in log) == 6
    assert json.loads((out / "results.json").read_text())["autosem"]["arms"].keys() == {"emotion", "irony", "hate"}


def test_infomtl_autosem_searches_ratios_on_tweeteval(data_root, tmp_path, capsys) -> None:
    out = tmp_path / "search"
    assert main(["autosem", "--tasks", "irony,hate", "--trials", "2", "--candidates", "100", "--epochs", "1",
                 "--data-dir", str(data_root), "--output-dir", str(out), *SMOKE]) == 0
    printed = capsys.readouterr().out
    saved = json.loads((out / "autosem.json").read_text())
    assert saved["scored_on"] == "avg" and len(saved["trials"]) == 2
    chosen = ",".join(f"{n}={r:.3f}" for n, r in saved["best"]["ratios"].items())
    assert f"chosen ratios (trial {saved['best']['number']}, val avg " in printed and chosen in printed
    assert f"infomtl train --config {out / 'ratios.yaml'}" in printed
    assert main(["autosem", "--tasks", "irony,hate", "--regime", "per-task", "--output-dir",
                 str(tmp_path / "other"), *SMOKE]) == 2
    assert "drop --regime per-task" in capsys.readouterr().err
