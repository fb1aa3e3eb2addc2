"""The naive reference: the same model and data trained the way the authors' public code does.

The public code of this family (Hu et al.'s "Structured Probabilistic Coding" and
"Conditional Information Flow Maximization"; InfoMTL's own repository is empty) trains
like this, and so does :class:`NaiveTrainer`:

* **per-task batches**: every step holds ``B`` random rows of one task; here tasks come
  round-robin in a seeded random order per round, so every task is equally often in a
  short timed window (:func:`naive_plan`);
* **tokenise inside forward**: every step calls the tokenizer on the step's raw texts;
* **pad to the longest text of a random batch**: no length bucketing;
* **a second full encoder call** for InfoNCE's second dropout view (instead of one
  forward of the doubled batch ``[x; x]``);
* **fp32**, a plain PyTorch loop (no ``accelerate``, no autocast, no compilation).

The math is the library's: the same encoder weights (``load_backbone``), the same
training rows (``prepare_data`` with the same seed), the method's own decoder, objective
and weighting (``Method.loss`` / ``Method.backward``: InfoMTL's CE + β·KL + α·InfoNCE),
Adamax at the configured learning rate, gradient-norm clipping. Only the way the work
is fed to the encoder differs, which is what the benchmark measures. Text pairs
(AffectEval's EI-reg) are not supported: TweetEval has none.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from infomtl.config import TrainConfig
from infomtl.data.encoding import Batch
from infomtl.data.loading import prepare_data
from infomtl.methods import BackwardContext, Method
from infomtl.modeling.backbones import load_backbone, pool
from infomtl.modeling.model import ModelOutput
from infomtl.training import resolve_spec


def naive_plan(sizes: list[int], batch_size: int, steps: int, seed: int) -> list[tuple[int, np.ndarray]]:
    """``steps`` per-task batches ``(task, rows)``: each round visits every task once in a
    random order and takes its next ``batch_size`` rows of a seeded random permutation
    (a task's rows are reshuffled when they run out). No length bucketing."""
    rng = np.random.default_rng([seed, 7])
    perms = [rng.permutation(n) for n in sizes]
    cursor = [0] * len(sizes)
    plan: list[tuple[int, np.ndarray]] = []
    while len(plan) < steps:
        for t in rng.permutation(len(sizes)):
            take = min(batch_size, sizes[t])
            if cursor[t] + take > sizes[t]:
                perms[t], cursor[t] = rng.permutation(sizes[t]), 0
            plan.append((int(t), perms[t][cursor[t] : cursor[t] + take]))
            cursor[t] += take
    return plan[:steps]


class NaiveModel(nn.Module):
    """Encoder + pooling + the method's decoder; tokenises raw texts in ``forward``."""

    def __init__(self, encoder: nn.Module, tokenizer: object, decoder: nn.Module, pooling: str,
                 max_length: int) -> None:
        super().__init__()
        self.encoder = encoder
        self.tokenizer = tokenizer
        self.decoder = decoder
        self.pooling = pooling
        self.max_length = max_length

    def forward(self, texts: list[str], task: int, labels: torch.Tensor, views: int) -> tuple[ModelOutput, Batch]:
        device = labels.device
        enc = self.tokenizer(texts, padding=True, truncation=True, max_length=self.max_length,
                             return_tensors="pt")
        enc = {k: v.to(device) for k, v in enc.items()}
        h = pool(self.encoder(**enc).last_hidden_state, enc["attention_mask"], self.pooling)
        h_pos = None
        if views == 2:  # the second dropout view: a second full encoder call
            h_pos = pool(self.encoder(**enc).last_hidden_state, enc["attention_mask"], self.pooling)
        rows = {task: torch.arange(len(texts), device=device)}
        heads, extras = self.decoder(h, rows)
        batch = Batch(enc["input_ids"], enc["attention_mask"], enc.get("token_type_ids"), rows, {task: labels})
        return ModelOutput(h=h, h_views=h_pos, heads=heads, extras=extras), batch


class NaiveTrainer:
    """A plain training loop over :class:`NaiveModel` (see the module doc).

    ``config`` is the configuration of the run it is the reference for; its
    ``mixed_precision`` is ignored (the reference is fp32).
    """

    def __init__(self, config: TrainConfig, device: torch.device) -> None:
        torch.manual_seed(config.run.seed)
        self.config = config
        self.device = device
        self.data = prepare_data(config)
        self.tasks = list(self.data.tasks)
        train = [self.data.splits[t.name]["train"] for t in self.tasks]
        if any(part.pairs is not None for part in train):
            raise NotImplementedError("the naive reference does not handle text pairs")
        self.texts = [part.texts for part in train]
        self.labels = [torch.from_numpy(np.asarray(part.labels)) for part in train]
        self.sizes = [len(part.texts) for part in train]
        backbone = load_backbone(config.model.backbone, config.model.pooling, config.model.max_length)
        self.tokenizer = backbone.tokenizer
        self.method = Method(resolve_spec(config), self.tasks, backbone.hidden_size, self.sizes,
                             config.model.head_dropout, config.model.head_hidden).to(device)
        self.model = NaiveModel(backbone.encoder, backbone.tokenizer, self.method.build_decoder(),
                                config.model.pooling, config.model.max_length).to(device)
        self.model.train()
        self.method.train()
        self.params = [p for p in [*self.model.parameters(), *self.method.parameters()] if p.requires_grad]
        self.optimizer = torch.optim.Adamax(self.params, lr=config.optim.lr)
        shared = [p for p in self.model.encoder.parameters() if p.requires_grad]
        heads = [list(h.parameters()) for h in getattr(self.model.decoder, "heads", [])]
        self.ctx = BackwardContext(lambda loss: loss.backward(), shared, heads)

    @property
    def encoder(self) -> nn.Module:
        return self.model.encoder

    def token_lengths(self, task: int, rows: np.ndarray) -> np.ndarray:
        """Real token lengths of ``rows`` (the tokenizer's, with truncation), for counting."""
        enc = self.tokenizer([self.texts[task][i] for i in rows], truncation=True,
                             max_length=self.config.model.max_length)
        return np.fromiter((len(x) for x in enc["input_ids"]), dtype=np.int64, count=len(rows))

    def train_step(self, task: int, rows: np.ndarray) -> torch.Tensor:
        """One optimisation step on ``rows`` of ``task``."""
        texts = [self.texts[task][i] for i in rows]
        labels = self.labels[task][torch.from_numpy(np.asarray(rows))].to(self.device)
        out, batch = self.model(texts, task, labels, self.method.views)
        total, terms, _ = self.method.loss(out, batch)
        self.method.backward(total, terms, self.ctx)
        if self.config.optim.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(self.params, self.config.optim.grad_clip)
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.method.weighting.on_step_end(terms)
        return total
