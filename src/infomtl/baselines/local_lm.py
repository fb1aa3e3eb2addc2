"""A local Hugging Face causal LM as the baseline's model (``--backend hf``).

``model`` is any Hugging Face model id or local folder, loaded with
``AutoTokenizer`` and ``AutoModelForCausalLM``. A question becomes the tokenizer's
chat template applied to its messages (with the generation prompt) when the tokenizer
has one, else the message text followed by ``"\\nAnswer:"``. Questions are sorted by
length and generated in batches of ``batch_size``, left-padded, greedily (no
sampling, one beam), at most ``max_tokens`` new tokens; the reply is the decoded new
tokens without special tokens. On a GPU (unless ``cpu``) the model runs in its saved
dtype, on the CPU in float32.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from infomtl.baselines.cache import answer_key
from infomtl.baselines.questions import Messages
from infomtl.errors import ConfigError


@dataclass
class LocalCausalLM:
    """A causal LM and its tokenizer, loaded on first use (see the module docstring)."""

    model: str
    max_tokens: int = 16
    batch_size: int = 8
    cpu: bool = False
    _loaded: tuple[Any, Any, Any] | None = field(default=None, init=False, repr=False)

    name = "hf"

    def settings(self) -> dict[str, Any]:
        """What, besides the model and the messages, decides an answer (part of its cache key)."""
        return {"greedy": True, "max_tokens": self.max_tokens}

    def key(self, messages: Messages) -> str:
        return answer_key(self.name, self.model, self.settings(), messages)

    def load(self) -> tuple[Any, Any, Any]:
        """``(tokenizer, model, device)``; a one-line :class:`ConfigError` if the model cannot be loaded."""
        if self._loaded is not None:
            return self._loaded
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        from infomtl.modeling.backbones import quiet_transformers

        device = torch.device("cuda" if torch.cuda.is_available() and not self.cpu else "cpu")
        try:
            with quiet_transformers():
                tokenizer = AutoTokenizer.from_pretrained(self.model)
                dtype = "auto" if device.type == "cuda" else torch.float32
                model = AutoModelForCausalLM.from_pretrained(self.model, dtype=dtype)
        except (OSError, ValueError, KeyError) as exc:
            hint = ("the folder does not hold a Hugging Face causal LM" if Path(self.model).exists() else
                    "not a local folder, and the Hugging Face hub could not provide it (offline?)")
            raise ConfigError(f"--backend hf: cannot load model {self.model!r}: {hint}") from exc
        tokenizer.padding_side = "left"
        if tokenizer.pad_token is None:
            if tokenizer.eos_token is None:
                raise ConfigError(f"--backend hf: the tokenizer of {self.model!r} has neither a pad nor an "
                                  "end-of-sequence token to pad batches with")
            tokenizer.pad_token = tokenizer.eos_token
        model.eval().to(device)
        self._loaded = (tokenizer, model, device)
        return self._loaded

    def render(self, messages: Messages) -> str:
        """The text the model continues (see the module docstring)."""
        tokenizer = self.load()[0]
        if getattr(tokenizer, "chat_template", None):
            return tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
        return "\n\n".join(m["content"] for m in messages) + "\nAnswer:"

    def ask(self, questions: list[tuple[str, Messages]], on_reply: Callable[[str, str], None]) -> int:
        """Answer every ``(key, messages)``; ``on_reply(key, reply)`` after each batch. Returns 0 (no retries)."""
        if not questions:
            return 0
        import torch

        tokenizer, model, device = self.load()
        chat = bool(getattr(tokenizer, "chat_template", None))
        texts = [self.render(m) for _, m in questions]
        lengths = [len(ids) for ids in tokenizer(texts, add_special_tokens=not chat)["input_ids"]]
        order = sorted(range(len(texts)), key=lambda i: (lengths[i], i))
        generation = copy.deepcopy(model.generation_config)
        generation.update(do_sample=False, num_beams=1, temperature=None, top_p=None, top_k=None,
                          max_new_tokens=self.max_tokens, pad_token_id=tokenizer.pad_token_id)
        for start in range(0, len(order), self.batch_size):
            rows = order[start:start + self.batch_size]
            batch = tokenizer([texts[i] for i in rows], return_tensors="pt", padding=True,
                              add_special_tokens=not chat).to(device)
            with torch.no_grad():
                out = model.generate(**batch, generation_config=generation)
            replies = tokenizer.batch_decode(out[:, batch["input_ids"].shape[1]:], skip_special_tokens=True)
            for i, reply in zip(rows, replies, strict=True):
                on_reply(questions[i][0], reply.strip())
        return 0
