"""TextCNN heads over the encoder's token states (the "STL with CNN" baseline).

Per task t: ``c_k = ReLU(conv_k(S))`` for kernel widths k ∈ {3, 4, 5} with F filters
each, ``p_k = max`` over the valid (non-padding) windows, and
``ℓ_t = loss_t(W_t · Dropout([p_3; p_4; p_5]) + b_t, y)`` (cross-entropy, BCE or MSE
by task kind), task losses only. ``--method stl-cnn`` trains one such model per
task over a frozen backbone (about 2.0M head parameters per task for d = 768,
F = 216); ``--method textcnn`` is the multi-task variant (one encoder shared by
every task's TextCNN head; add ``--freeze-backbone`` to keep the encoder fixed).
"""

from __future__ import annotations

from dataclasses import dataclass

from infomtl.methods.base import Hyper
from infomtl.methods.objectives.linear import LinearObjective
from infomtl.methods.registry import register_objective
from infomtl.modeling.heads import TextCNNHead
from infomtl.modeling.model import TokenTaskHeads


@dataclass
class TextCNNHyper(Hyper):
    """``filters`` per kernel width, ``kernels`` as widths joined by ``/``, head ``dropout``."""

    filters: int = 216
    kernels: str = "3/4/5"
    dropout: float = 0.5

    @property
    def kernel_sizes(self) -> tuple[int, ...]:
        return tuple(int(k) for k in self.kernels.split("/") if k.strip())

    def validate(self) -> None:
        if not self.filters >= 1:
            raise ValueError(f"filters must be >= 1, got {self.filters}")
        try:
            sizes = self.kernel_sizes
        except ValueError:
            sizes = ()
        if not sizes or min(sizes) < 1:
            raise ValueError(f"kernels must be positive widths joined by '/', e.g. 3/4/5, got {self.kernels!r}")
        if not 0 <= self.dropout < 1:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")


@register_objective
class TextCNNObjective(LinearObjective):
    """TextCNN heads (kernels 3/4/5, F filters, ReLU, masked max-pool, dropout, linear) on token states."""

    name = "textcnn"
    reference = "Kim 2014 (Convolutional Neural Networks for Sentence Classification)"
    Hyper = TextCNNHyper
    hp: TextCNNHyper
    token_states = True

    def build_decoder(self) -> TokenTaskHeads:
        hp = self.hp
        return TokenTaskHeads([
            TextCNNHead(self.hidden_size, t.num_outputs, hp.filters, hp.kernel_sizes, hp.dropout)
            for t in self.tasks
        ])
