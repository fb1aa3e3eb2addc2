"""Hierarchical MTL (de Freitas et al., "Multi-task learning with a hierarchy of task
noise", 2022): a shared latent Z with a learned, input-independent Gaussian noise per
task; tasks whose noise log-variances are close are related.

    Z = W_p h                                          (k = ``latent_dim``)
    W_t = Z + N_t,   N_t ~ N(0, diag e^{n_t})          (training; W_t = Z at test)
    ŷ_t = V_t W_t + c_t                                 (a linear head k → C_t per task)
    KL_t(row) = KL(N(Z, e^{n_t}) ‖ N(0, e^{q_t}))
              = ½ Σ_j [ e^{n_j − q_j} + Z_j² e^{−q_j} + q_j − n_j − 1 ]
    L = Σ_t ( ℓ_t + β · mean_{rows of t} KL_t / k )     (``kl_reduction="mean"``, the default)

``n_t, q_t ∈ R^k`` are parameters of the decoder (input-independent; one 1-D
parameter per task, so no weight decay), clamped to [−10, 10] in the forward pass.
``n_t`` starts at ``noise_init`` = −2 (ours: noise variance e^{−2} ≈ 0.14, small next
to the signal; the paper does not fix it), ``q_t`` at 0 (a unit prior). β · KL_t is
part of the **per-task** loss ℓ_t, so a weighting weights ``ℓ_t + β KL_t`` together
(with EW and ``normalize="sum"`` this is the rule above exactly; the default mean
convention divides the whole by the number of tasks).

**The KL is averaged over the k dimensions** (ours). β = 0.1 is the original's, for a
KL summed over a latent of 4 dimensions; summed over k = 128 it is 32 times stronger,
about 0.1 · 128 · ½(e^{−2} + 1 + Z²) per task at the start, more than the task loss,
and it pulls Z to zero (in the TweetEval fast mode: 13 points of test Avg below EW).
Averaging keeps β's weight against the task loss whatever k is (β/k per dimension).
``kl_reduction="sum"`` is the summed rule (for the original's k = 4 and β = 0.1 it is
what the paper trains).

Logged: ``ce`` and ``kl`` (as reduced in the loss) per task and step (components), and
the **signal-to-noise ratio of W_t** per task, ``SNR_t = mean_{rows of t, j} Z_j² /
e^{n_tj}`` (a component per step, and its epoch mean in :meth:`HierarchicalMTL.log_values`
with the mean of n_t). A task whose SNR falls toward 0 has its W_t drowned in noise
(or its Z pulled to zero); n_t then carries no relatedness signal.

Task clustering: ``D_ts = ‖n_t − n_s‖₁`` (clamped n), average linkage
(``scipy.cluster.hierarchy.linkage(method="average")``). :meth:`HierarchicalMTL.write_artifacts`
writes ``task_distances.json`` (tasks, matrix, the scipy linkage, the merges by task
name, flat clusters for every cluster count k = 1..T via ``fcluster(criterion="maxclust")``,
the n_t vectors) and ``task_distances.csv`` (the matrix with task names).

Heads return ``mean`` = V_t Z + c_t and, in training, ``sample`` = V_t W_t + c_t.
Extras: ``z`` ``(B, k)``, ``noise_logvar`` and ``prior_logvar`` ``(T, k)`` (clamped).
``head_dropout`` applies to W_t before each head; ``head_hidden`` is not used.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from infomtl.data.encoding import Batch
from infomtl.fileio import write_text
from infomtl.methods.base import Hyper, LossTerms, Objective
from infomtl.methods.registry import register_objective
from infomtl.methods.weightings.common import task_kpi
from infomtl.modeling.heads import HeadOutput
from infomtl.modeling.losses import task_loss
from infomtl.modeling.model import ModelOutput

#: bound of the task noise and prior log-variances
LOGVAR_BOUND = 10.0


def hmtl_kl(z: torch.Tensor, noise_logvar: torch.Tensor, prior_logvar: torch.Tensor) -> torch.Tensor:
    """Per-row ``KL(N(Z, e^n) ‖ N(0, e^q))`` summed over the k dimensions: ``(N,)``.

    ``z`` is ``(N, k)``; ``noise_logvar`` and ``prior_logvar`` are ``(k,)``.
    """
    z, n, q = z.float(), noise_logvar.float(), prior_logvar.float()
    per_dim = torch.exp(n - q) + z.pow(2) * torch.exp(-q) + q - n - 1.0
    return 0.5 * per_dim.sum(dim=-1)


def signal_to_noise(z: torch.Tensor, noise_logvar: torch.Tensor) -> torch.Tensor:
    """``mean_{rows, j} Z_j² / e^{n_j}``: the signal-to-noise ratio of ``W = Z + N``, a 0-d
    tensor (``z`` is ``(N, k)``, ``noise_logvar`` ``(k,)``; no gradient)."""
    with torch.no_grad():
        return (z.float().pow(2) * torch.exp(-noise_logvar.float())).mean()


def task_distances(noise_logvar: torch.Tensor | np.ndarray) -> np.ndarray:
    """``D_ts = ‖n_t − n_s‖₁`` for ``(T, k)`` noise log-variances: a ``(T, T)`` matrix."""
    n = np.asarray(torch.as_tensor(noise_logvar).detach().cpu().double())
    return np.abs(n[:, None, :] - n[None, :, :]).sum(axis=-1)


def cluster_tasks(names: list[str], distances: np.ndarray) -> dict[str, Any]:
    """Average-linkage clustering of tasks from their distance matrix (JSON-ready)."""
    from scipy.cluster.hierarchy import fcluster, linkage
    from scipy.spatial.distance import squareform

    count = len(names)
    result: dict[str, Any] = {"linkage": [], "merges": [], "clusters": {}}
    if count < 2:
        result["clusters"] = {str(k): [1] * count for k in range(1, count + 1)}
        return result
    condensed = squareform(np.asarray(distances, dtype=np.float64), checks=False)
    link = linkage(condensed, method="average")
    members: list[list[str]] = [[n] for n in names]
    for a, b, dist, size in link:
        left, right = members[int(a)], members[int(b)]
        result["merges"].append({"left": left, "right": right, "distance": float(dist)})
        members.append(left + right)
        result["linkage"].append([int(a), int(b), float(dist), int(size)])
    result["clusters"] = {
        str(k): [int(c) for c in fcluster(link, k, criterion="maxclust")] for k in range(1, count + 1)
    }
    return result


KL_REDUCTIONS = ("mean", "sum")


@dataclass
class HierarchicalMTLHyper(Hyper):
    """``latent_dim`` k = 128 (ours), ``hmtl_beta`` β = 0.1, ``noise_init`` n_t(0) = −2 (ours),
    ``kl_reduction`` = ``"mean"`` (ours: the KL averaged over the k dimensions) or
    ``"sum"`` (summed, the original's rule for its k = 4)."""

    latent_dim: int = 128
    hmtl_beta: float = 0.1
    noise_init: float = -2.0
    kl_reduction: str = "mean"

    def validate(self) -> None:
        if self.kl_reduction not in KL_REDUCTIONS:
            raise ValueError(
                f"kl_reduction must be one of {KL_REDUCTIONS}, got {self.kl_reduction!r}"
            )
        if not self.latent_dim > 0:
            raise ValueError("latent_dim must be > 0")
        if not self.hmtl_beta >= 0:  # also rejects NaN
            raise ValueError("hmtl_beta must be >= 0")
        if not -LOGVAR_BOUND <= self.noise_init <= LOGVAR_BOUND:
            raise ValueError(f"noise_init must be in [-{LOGVAR_BOUND:g}, {LOGVAR_BOUND:g}]")


class HierarchicalDecoder(nn.Module):
    """``Z = W_p h``, per-task noise ``N_t`` and prior log-variances, linear heads on W_t."""

    def __init__(
        self, hidden_size: int, dim: int, outputs: list[int], dropout: float, noise_init: float
    ) -> None:
        super().__init__()
        self.proj = nn.Linear(hidden_size, dim)
        # one 1-D parameter per task (1-D: the trainer gives them no weight decay)
        self.noise_logvar = nn.ParameterList(
            nn.Parameter(torch.full((dim,), float(noise_init))) for _ in outputs
        )
        self.prior_logvar = nn.ParameterList(nn.Parameter(torch.zeros(dim)) for _ in outputs)
        self.dropout = nn.Dropout(dropout)
        self.heads = nn.ModuleList(nn.Linear(dim, c) for c in outputs)

    def shared_parameters(self) -> list[nn.Parameter]:
        """Decoder parameters every task's loss reaches (for gradient aggregators such as
        PCGrad, beside the encoder's); per-task parameters are not among them."""
        return list(self.proj.parameters())

    def forward(
        self, h: torch.Tensor, rows: dict[int, torch.Tensor]
    ) -> tuple[dict[int, HeadOutput], dict[str, torch.Tensor]]:
        z = self.proj(h)
        n = torch.stack(list(self.noise_logvar)).clamp(-LOGVAR_BOUND, LOGVAR_BOUND)
        q = torch.stack(list(self.prior_logvar)).clamp(-LOGVAR_BOUND, LOGVAR_BOUND)
        outputs = {}
        for t, r in rows.items():
            head, zt = self.heads[t], z.index_select(0, r)
            mean = head(self.dropout(zt))
            sample = None
            if self.training:
                w = zt + torch.exp(0.5 * n[t]).to(zt.dtype) * torch.randn_like(zt)
                sample = head(self.dropout(w))
            outputs[t] = HeadOutput(mean=mean, sample=sample)
        return outputs, {"z": z, "noise_logvar": n, "prior_logvar": q}


@register_objective
class HierarchicalMTL(Objective):
    """Shared latent Z + learned task noise N(0, e^{n_t}); ℓ_t + β·KL_t/k; clusters by n_t.

    The prior of task t's noise is N(0, e^{q_t}) (learned); the KL is averaged over the
    latent dimensions by default; the clustering uses ``‖n_t − n_s‖₁`` with average
    linkage (see the module docstring for the full rule).
    """

    name = "hierarchical-mtl"
    aliases = ("hmtl",)
    reference = "de Freitas et al. 2022, Multi-task learning with a hierarchy of task noise"
    Hyper = HierarchicalMTLHyper
    hp: HierarchicalMTLHyper
    shared_decoder = True

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # a plain list, so that the decoder's parameters are not also the method's
        self._decoders: list[HierarchicalDecoder] = []
        # the epoch's running sums of the per-step SNR per task (on the loss device)
        self._snr_sum: torch.Tensor | None = None
        self._snr_count = [0] * len(self.tasks)
        #: SNR_t of the last finished epoch, by task name
        self.epoch_snr: dict[str, float] = {}

    def build_decoder(self) -> HierarchicalDecoder:
        decoder = HierarchicalDecoder(
            self.hidden_size, self.hp.latent_dim, [t.num_outputs for t in self.tasks],
            self.head_dropout, self.hp.noise_init,
        )
        self._decoders[:] = [decoder]
        return decoder

    def loss_terms(self, out: ModelOutput, batch: Batch) -> LossTerms:
        z, n, q = out.extras["z"], out.extras["noise_logvar"], out.extras["prior_logvar"]
        losses, kpis = {}, {}
        parts: dict[tuple[str, int | None], torch.Tensor] = {}
        for t, o in out.heads.items():
            task, y = self.tasks[t], batch.labels[t]
            ce = task_loss(task, o.train_output, y)
            zt = z.index_select(0, batch.rows[t])
            kl = hmtl_kl(zt, n[t], q[t]).mean()
            if self.hp.kl_reduction == "mean":
                kl = kl / z.shape[-1]
            kpis[t] = task_kpi(task, o.train_output, y)
            parts[("ce", t)] = ce.detach()
            parts[("kl", t)] = kl.detach()
            parts[("snr", t)] = signal_to_noise(zt, n[t])
            losses[t] = ce + self.hp.hmtl_beta * kl
        return LossTerms(losses, None, parts, kpis)

    def on_step_end(self, terms: LossTerms) -> None:
        for (name, t), value in terms.components.items():
            if name != "snr" or t is None:
                continue
            if self._snr_sum is None:
                self._snr_sum = torch.zeros(len(self.tasks), device=value.device)
                self._snr_count = [0] * len(self.tasks)
            elif self._snr_sum.device != value.device:  # restored from a saved state
                self._snr_sum = self._snr_sum.to(value.device)
            self._snr_sum[t] += value.float()
            self._snr_count[t] += 1

    def on_epoch_end(self, epoch: int, mean_losses: torch.Tensor) -> None:
        if self._snr_sum is None:
            return
        sums = self._snr_sum.tolist()
        self.epoch_snr = {
            task.name: sums[t] / count
            for t, (task, count) in enumerate(zip(self.tasks, self._snr_count, strict=True))
            if count
        }
        self._snr_sum.zero_()
        self._snr_count = [0] * len(self.tasks)

    def extra_state(self) -> dict[str, Any]:
        """The epoch's running SNR sums (a run stopped mid-epoch resumes them)."""
        if self._snr_sum is None:
            return {}
        return {"snr_sum": self._snr_sum.tolist(), "snr_count": list(self._snr_count)}

    def load_extra_state(self, state: dict[str, Any]) -> None:
        if "snr_sum" in state:
            self._snr_sum = torch.tensor(state["snr_sum"], dtype=torch.float32)
            self._snr_count = [int(c) for c in state["snr_count"]]

    # -- task clustering ---------------------------------------------------------------

    def noise_logvar(self) -> torch.Tensor | None:
        """The clamped ``(T, k)`` task noise log-variances of the built decoder (detached)."""
        if not self._decoders:
            return None
        n = torch.stack([p.detach() for p in self._decoders[0].noise_logvar])
        return n.clamp(-LOGVAR_BOUND, LOGVAR_BOUND).float().cpu()

    def task_clustering(self) -> dict[str, Any] | None:
        """Distances ``‖n_t − n_s‖₁`` and their average-linkage clustering (JSON-ready)."""
        n = self.noise_logvar()
        if n is None:
            return None
        names = [t.name for t in self.tasks]
        matrix = task_distances(n)
        return {
            "tasks": names,
            "distance": "L1 norm of the difference of the task noise log-variances n_t",
            "matrix": matrix.tolist(),
            "linkage_method": "average",
            **cluster_tasks(names, matrix),
            "clusters_note": "clusters[k]: the cluster id of each task (order of 'tasks') when "
            "the average-linkage tree is cut into at most k clusters (fcluster maxclust)",
            "noise_logvar": {name: row.tolist() for name, row in zip(names, n, strict=True)},
        }

    def write_artifacts(self, folder: Path) -> None:
        info = self.task_clustering()
        if info is None:
            return
        folder = Path(folder)
        write_text(folder / "task_distances.json", json.dumps(info, indent=2) + "\n")
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(["task", *info["tasks"]])
        for name, row in zip(info["tasks"], info["matrix"], strict=True):
            writer.writerow([name, *(f"{v:.6g}" for v in row)])
        write_text(folder / "task_distances.csv", buffer.getvalue())

    def log_values(self) -> dict[str, Any]:
        n = self.noise_logvar()
        if n is None:
            return {}
        names = [t.name for t in self.tasks]
        means = dict(zip(names, n.mean(dim=1).tolist(), strict=True))
        values: dict[str, Any] = {"noise_logvar_mean": means}
        if self.epoch_snr:
            values["snr"] = dict(self.epoch_snr)
        return {self.name: values}

