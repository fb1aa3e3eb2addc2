"""Thompson sampling over tasks: the bandit of AutoSeM's first stage.

AutoSeM (Guo, Pasunuru and Bansal, NAACL 2019, "AutoSeM: Automatic Task Selection and
Mixing in Multi-Task Learning") treats every task as the arm of a Beta-Bernoulli bandit.
Arm k holds a Beta(α_k, β_k) belief about the probability that training on task k
improves the primary task's validation score. A choice draws θ_k ~ Beta(α_k, β_k) for
every arm and takes ``argmax_k θ_k``. After the chosen arm a was trained and a reward
r ∈ {0, 1} observed (1: the score improved), every arm is first decayed towards its
prior, which keeps the bandit responsive to utilities that change as the model trains,

    (α_k, β_k) ← γ·(α_k, β_k) + (1 − γ)·(α₀, β₀)      for every k   (γ = 0.7, α₀ = β₀ = 1),

that is (α, β) ← 0.7·(α, β) + 0.3, and then the chosen arm counts the reward:
α_a += r, β_a += 1 − r. The posterior mean α_k / (α_k + β_k) is the task's estimated
utility, from which the second stage starts its search of mixing ratios.

Example (three arms at (1, 1)): reward 1 for arm 0, then reward 0 for arm 1, gives
(1.7, 1), (1, 2), (1, 1).
"""

from __future__ import annotations

from typing import Any

import numpy as np

#: γ of the decay (α, β) ← γ(α, β) + (1 − γ)(α₀, β₀) (AutoSeM's value 0.7: the rule 0.7(α, β) + 0.3)
DECAY = 0.7
#: the prior Beta(α₀, β₀) of every arm
PRIOR = (1.0, 1.0)


class ThompsonSampler:
    """Beta-Bernoulli Thompson sampling with decay (see the module docstring).

    Args:
        arms: number of arms (tasks).
        decay: γ, in (0, 1]; 1 = no decay (the stationary bandit).
        prior: (α₀, β₀) of every arm, both > 0.
    """

    def __init__(self, arms: int, decay: float = DECAY, prior: tuple[float, float] = PRIOR) -> None:
        if arms < 1:
            raise ValueError("a bandit needs at least one arm")
        if not 0 < decay <= 1:
            raise ValueError(f"decay must be in (0, 1], got {decay}")
        if not (prior[0] > 0 and prior[1] > 0):
            raise ValueError(f"the prior's alpha and beta must be > 0, got {prior}")
        self.decay = float(decay)
        self.prior = (float(prior[0]), float(prior[1]))
        self.alpha = np.full(arms, self.prior[0])
        self.beta = np.full(arms, self.prior[1])

    @property
    def arms(self) -> int:
        return len(self.alpha)

    @property
    def means(self) -> np.ndarray:
        """Posterior mean α_k / (α_k + β_k) of every arm."""
        return self.alpha / (self.alpha + self.beta)

    def choose(self, rng: np.random.Generator) -> int:
        """Draw θ_k ~ Beta(α_k, β_k) for every arm (one draw each, in arm order) and return the argmax."""
        return int(np.argmax(rng.beta(self.alpha, self.beta)))

    def update(self, arm: int, reward: float) -> None:
        """Decay every arm towards the prior, then add ``reward`` (in [0, 1]) to arm ``arm``."""
        if not 0 <= arm < self.arms:
            raise IndexError(f"arm {arm} of a bandit with {self.arms} arms")
        if not 0 <= reward <= 1:
            raise ValueError(f"reward must be in [0, 1], got {reward}")
        self.alpha = self.decay * self.alpha + (1 - self.decay) * self.prior[0]
        self.beta = self.decay * self.beta + (1 - self.decay) * self.prior[1]
        self.alpha[arm] += reward
        self.beta[arm] += 1 - reward

    def state_dict(self) -> dict[str, Any]:
        """The arms as JSON-ready lists (floats: a JSON round trip restores them exactly)."""
        return {"alpha": self.alpha.tolist(), "beta": self.beta.tolist()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        alpha, beta = np.asarray(state["alpha"], dtype=np.float64), np.asarray(state["beta"], dtype=np.float64)
        if alpha.shape != (self.arms,) or beta.shape != (self.arms,):
            raise ValueError(f"saved bandit has {alpha.size} arms, this one {self.arms}")
        self.alpha, self.beta = alpha, beta

    def __repr__(self) -> str:
        arms = ", ".join(f"({a:.3g}, {b:.3g})" for a, b in zip(self.alpha, self.beta, strict=True))
        return f"ThompsonSampler(decay={self.decay}, arms=[{arms}])"
