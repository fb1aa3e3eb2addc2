"""AutoSeM's two stages end to end (``infomtl autosem``; Guo, Pasunuru and Bansal, NAACL 2019).

**Stage 1** trains one run in the ``autosem`` regime (:mod:`infomtl.training.autosem`):
Thompson sampling over the tasks, rewarded when the primary task's validation score (or
the validation Avg without ``--primary-task``) improves. Its final posterior means
``u_t = α_t / (α_t + β_t)`` are each task's estimated utility.

**Stage 2** searches the mixing ratios ``p`` (a point of the simplex: ``p_t >= 0``,
``Σ_t p_t = 1``) of the ``ratios`` regime by Bayesian optimisation over a few trials, each
a training run with the same options: trial 1 trains ``p = u / Σ_t u_t``; every later
trial fits a Gaussian process (scikit-learn's ``GaussianProcessRegressor``, Matern 5/2
kernel plus a white-noise term, ``normalize_y``) to the trials so far, ``score(p)``, and
trains the candidate of largest expected improvement

    EI(p) = (μ(p) − s⁺ − ξ)·Φ(z) + σ(p)·φ(z),   z = (μ(p) − s⁺ − ξ) / σ(p),

s⁺ the best score so far and ξ = 0.01, among ``candidates`` points drawn uniformly from
the simplex (Dirichlet(1, ..., 1), seeded by the run's seed and the trial's number). A
trial's score is the validation score (primary task, or Avg) of its selected checkpoint:
the test split plays no part in any choice. The best trial's ratios are the result.

The folder (``--output-dir``)::

    stage1/           the autosem run (results.json: the final arms)
    trial-1/ ...      one ratios run per trial
    autosem.json      the arms, every trial's ratios and score, the chosen ratios
    ratios.yaml       the best trial's options that differ from the defaults (regime:
                      ratios, task_ratios: ...), for ``infomtl train --config ratios.yaml``

Running the same command again continues: finished runs are read back (when their
options are still those of this search), an interrupted one resumes, and the proposals
depend only on the trials before them.
"""

from __future__ import annotations

import copy
import dataclasses
import logging
import shutil
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from infomtl.artifacts.run_folder import new_run_dir
from infomtl.config import TrainConfig
from infomtl.data.loading import prepare_data
from infomtl.errors import ConfigError, InfomtlError
from infomtl.experiments.store import run_id
from infomtl.fileio import read_json, write_json, write_text
from infomtl.options import load_yaml
from infomtl.tables import markdown_table
from infomtl.training import train

log = logging.getLogger(__name__)

#: ξ of the expected improvement (in the units of the score, points of a percentage)
XI = 0.01
#: Options left out of ``ratios.yaml``: where and how a run trains, not what it is.
MACHINE_OPTIONS = ("output_dir", "threads", "progress")


def expected_improvement(mean: np.ndarray, std: np.ndarray, best: float, xi: float = XI) -> np.ndarray:
    """EI of a maximisation at points with posterior ``mean`` and ``std`` (0 where std is 0)."""
    from scipy.stats import norm

    gain = mean - best - xi
    with np.errstate(divide="ignore", invalid="ignore"):
        z = np.where(std > 0, gain / std, 0.0)
    return np.where(std > 0, gain * norm.cdf(z) + std * norm.pdf(z), 0.0)


def propose_ratios(points: np.ndarray, scores: np.ndarray, rng: np.random.Generator,
                   candidates: int = 1000) -> np.ndarray:
    """The next mixing ratios: the candidate of largest expected improvement under a GP fit
    to ``points`` ``(n, T)`` and their ``scores`` ``(n,)`` (module docstring)."""
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.gaussian_process import GaussianProcessRegressor
    from sklearn.gaussian_process.kernels import ConstantKernel, Matern, WhiteKernel

    points, scores = np.asarray(points, dtype=np.float64), np.asarray(scores, dtype=np.float64)
    pool = rng.dirichlet(np.ones(points.shape[1]), size=candidates)
    kernel = ConstantKernel(1.0, (1e-3, 1e3)) * Matern(length_scale=0.3, length_scale_bounds=(1e-2, 10.0), nu=2.5) \
        + WhiteKernel(1e-2, (1e-6, 1.0))
    gp = GaussianProcessRegressor(kernel, normalize_y=True, n_restarts_optimizer=2,
                                  random_state=int(rng.integers(2**31)))
    with warnings.catch_warnings():  # hyperparameters at a bound: expected with a few trials
        warnings.simplefilter("ignore", ConvergenceWarning)
        gp.fit(points, scores)
    mean, std = gp.predict(pool, return_std=True)
    return pool[int(np.argmax(expected_improvement(mean, std, float(scores.max()))))]


@dataclass
class Trial:
    """One stage-2 run: its ratios, validation score and folder, and what proposed it."""

    number: int
    ratios: dict[str, float]
    score: float
    run_dir: str
    proposed_by: str

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass
class AutoSemResult:
    """The search: the folder, what the score is (a task's name or ``avg``), the stage-1
    arms and run, the trials, and the best of them."""

    folder: Path
    scored_on: str
    arms: dict[str, dict[str, float]]
    stage1_dir: str
    trials: list[Trial] = field(default_factory=list)

    @property
    def best(self) -> Trial:
        return max(self.trials, key=lambda t: (t.score, -t.number))

    def to_dict(self) -> dict[str, Any]:
        return {
            "scored_on": self.scored_on,
            "stage1": {"run_dir": self.stage1_dir, "arms": self.arms},
            "trials": [t.to_dict() for t in self.trials],
            "best": self.best.to_dict(),
        }

    def table(self) -> str:
        """The trials as a Markdown table, the best one marked."""
        names = list(self.best.ratios)
        rows = [[t.number, t.proposed_by, *[f"{t.ratios[n]:.3f}" for n in names], f"{t.score:.2f}",
                 "*" if t is self.best else ""] for t in self.trials]
        return markdown_table(["trial", "proposed by", *names, f"val {self.scored_on}", "best"], rows)


def _score(results: dict[str, Any], primary: str | None) -> float:
    val = results.get("val")
    if not val:
        raise InfomtlError("infomtl autosem scores each run on the validation split; these tasks have none")
    return float(val["avg"] if primary is None else val["scores"][primary])


def _train_in(folder: Path, config: TrainConfig) -> dict[str, Any]:
    """The results of ``config`` trained in ``folder``: read back if it finished with these
    options, resumed if it stopped part-way, else trained afresh."""
    config = config.replace(output_dir=str(folder), resume=None)
    if (folder / "config.yaml").is_file():
        saved = TrainConfig.from_dict(load_yaml(folder / "config.yaml"), str(folder / "config.yaml"))
        if run_id(saved) == run_id(config):
            if (folder / "results.json").is_file():
                return dict(read_json(folder / "results.json"))
            return train(config.replace(resume=str(folder))).results
    if folder.exists():  # another search's run, or a start that wrote nothing yet
        shutil.rmtree(folder)
    return train(config).results


def _check(config: TrainConfig, trials: int, candidates: int) -> None:
    if trials < 1:
        raise ConfigError(f"--trials must be >= 1, got {trials}")
    if candidates < 1:
        raise ConfigError(f"--candidates must be >= 1, got {candidates}")
    if config.batching.regime != "auto":
        raise ConfigError(f"infomtl autosem sets the regime of each run itself (autosem, then ratios); "
                          f"drop --regime {config.batching.regime}")
    if config.run.resume is not None:
        raise ConfigError("infomtl autosem continues a search when run again with the same --output-dir; "
                          "drop --resume")


def run_autosem(config: TrainConfig, trials: int = 5, candidates: int = 1000) -> AutoSemResult:
    """Stage 1, then ``trials`` stage-2 runs (module docstring); writes ``autosem.json`` after
    each trial and ``ratios.yaml`` at the end. Raises :class:`ConfigError` for bad options."""
    config = copy.deepcopy(config).validate()
    _check(config, trials, candidates)
    if len(prepare_data(config).task_names) < 2:  # also checks every task's data before training
        raise ConfigError("infomtl autosem mixes tasks: give it at least two")
    folder = Path(config.run.output_dir) if config.run.output_dir is not None else new_run_dir(None)
    primary = config.batching.primary_task
    scored_on = primary or "avg"

    log.info("autosem stage 1: Thompson sampling over the tasks -> %s", folder / "stage1")
    stage1 = _train_in(folder / "stage1", config.replace(regime="autosem", task_ratios={}))
    arms = stage1["autosem"]["arms"]
    names = list(arms)
    utility = np.array([arms[n]["mean"] for n in names])
    result = AutoSemResult(folder, scored_on, arms, str(folder / "stage1"))
    log.info("autosem stage 1: posterior means %s", ", ".join(f"{n}={arms[n]['mean']:.3f}" for n in names))

    for number in range(1, trials + 1):
        if number == 1:
            ratios, by = utility / utility.sum(), "stage 1"
        else:
            points = np.array([[t.ratios[n] for n in names] for t in result.trials])
            scores = np.array([t.score for t in result.trials])
            ratios = propose_ratios(points, scores, np.random.default_rng([config.run.seed, number]), candidates)
            by = "gp-ei"
        mix = {n: round(float(r), 6) for n, r in zip(names, ratios, strict=True)}
        run_dir = folder / f"trial-{number}"
        results = _train_in(run_dir, config.replace(regime="ratios", task_ratios=mix))
        result.trials.append(Trial(number, mix, _score(results, primary), str(run_dir), by))
        log.info("autosem trial %d/%d (%s): %s -> val %s %.2f", number, trials, by,
                 ",".join(f"{n}={r:.3f}" for n, r in mix.items()), scored_on, result.trials[-1].score)
        write_json(folder / "autosem.json", result.to_dict())

    best = result.best
    saved = TrainConfig.from_dict(load_yaml(Path(best.run_dir) / "config.yaml"), best.run_dir).to_dict()
    defaults = TrainConfig().to_dict()
    options = {k: v for k, v in saved.items() if v != defaults[k] and k not in MACHINE_OPTIONS}
    write_text(folder / "ratios.yaml", f"# infomtl autosem: the best of {len(result.trials)} trials "
               f"(val {scored_on} {best.score:.2f}, {best.run_dir})\n"
               + yaml.safe_dump(options, sort_keys=False))
    log.info("autosem: chosen ratios %s (trial %d); options in %s",
             ",".join(f"{n}={r:.3f}" for n, r in best.ratios.items()), best.number, folder / "ratios.yaml")
    return result
