"""Packed rows: several rows per sequence give the padded forward's representations."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from transformers import BertConfig, BertModel, RobertaConfig, RobertaModel

from benchmark_modules import load_benchmark_module
from infomtl.modeling.backbones import load_backbone
from infomtl.modeling.heads import LinearHead
from infomtl.modeling.model import MultiTaskModel, TaskHeads
from infomtl.modeling.packing import call_sequences, candidate_widths, pack, pack_rows, plan_packing, position_base

flops = load_benchmark_module("flops.py")  # the benchmark's recorder of encoder calls


def _padded(lengths: list[int], vocab: int, seed: int = 0, types: bool = False):
    g = torch.Generator().manual_seed(seed)
    n, width = len(lengths), max(lengths)
    ids = torch.randint(5, vocab, (n, width), generator=g)
    mask = torch.zeros(n, width, dtype=torch.long)
    for i, ell in enumerate(lengths):
        mask[i, :ell] = 1
    ids = ids * mask  # padding id 0
    tt = (torch.randint(0, 2, (n, width), generator=g) * mask) if types else None
    return ids, mask, tt, np.asarray(lengths)


def _model(encoder, pooling: str, packing: bool, chunk_tokens: int = 16384) -> MultiTaskModel:
    heads = TaskHeads([LinearHead(encoder.config.hidden_size, 2)])
    return MultiTaskModel(encoder, heads, pooling=pooling, chunk_tokens=chunk_tokens, packing=packing).eval()


def test_first_fit_decreasing_by_hand() -> None:
    # width 10: 9 | 7+3 | 6+4 | 5+2 (longest first, each into the first sequence with room)
    assert pack_rows(np.array([3, 7, 5, 9, 6, 4, 2]), 10) == [[3], [1, 0], [4, 5], [2, 6]]
    with pytest.raises(ValueError, match="more than the sequence width"):
        pack_rows(np.array([11]), 10)


def test_the_width_with_the_fewest_computed_tokens_by_hand() -> None:
    # 10, 9, 6, 4, 3, 2 (34 tokens): width 10 needs 4 sequences (40 tokens), width 12 three (36):
    # 10+2 | 9+3 | 6+4; every other candidate (11-15, 17-20) computes more except width 18, two sequences
    # 10+6+2 | 9+4+3 (36 tokens): a tie, the smaller width wins
    assert plan_packing(np.array([10, 9, 4, 3, 2, 6])) == (12, [[0, 4], [1, 3], [5, 2]])
    assert plan_packing(np.array([5])) == (5, [[0]])


def test_shape_steps_by_hand() -> None:
    # step 8: the candidates 10..15, 17..20 round up to 16 and 24; width 16 packs 10+6 | 9+4+3 | 2 (48 tokens)
    assert plan_packing(np.array([10, 9, 4, 3, 2, 6]), step=8) == (16, [[0, 5], [1, 2, 3], [4]])
    assert [call_sequences(n, 8) for n in (1, 2, 3, 4, 5, 8, 9)] == [1, 2, 3, 4, 8, 8, 12]
    assert [call_sequences(n, 0) for n in (1, 5, 9)] == [1, 5, 9]


def test_a_stepped_packed_call_equals_the_padded_forward() -> None:
    """Empty sequences fill a call up (each its own block): the rows' states are unchanged."""
    tiny = load_backbone("tiny", pooling="mean", max_length=32)
    ids, mask, _, lengths = _padded([9, 3, 14, 1, 7, 7, 12, 2, 5, 6], tiny.encoder.config.vocab_size)
    stepped = _model(tiny.encoder, "mean", packing=True)
    stepped.shape_step = 8
    with torch.no_grad(), flops.EncoderCalls(tiny.encoder) as calls:
        got = stepped.encode_chunked(ids, mask, None, lengths)
        want = _model(tiny.encoder, "mean", packing=False, chunk_tokens=0).encode_chunked(ids, mask, None, lengths)
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)
    width, bins = plan_packing(lengths, step=8)
    first = calls.calls()[0]
    assert (first.width, first.sequences) == (width, call_sequences(len(bins), 8)) and width % 8 == 0


def test_the_pruned_search_finds_what_trying_every_candidate_width_finds() -> None:
    """plan_packing stops once no width left can beat the best; trying every candidate width
    (the rule as stated: fewest P·W, the smallest width on a tie) gives the same plan."""
    rng = np.random.default_rng(0)
    for _ in range(300):
        lengths = rng.integers(1, int(rng.integers(2, 80)), int(rng.integers(1, 70)))
        _, width = min((len(pack_rows(lengths, w)) * w, w) for w in candidate_widths(lengths))
        assert plan_packing(lengths) == (width, pack_rows(lengths, width))


def test_the_block_diagonal_mask_and_restarted_positions_by_hand() -> None:
    ids = torch.tensor([[11, 12, 13], [21, 22, 0], [31, 0, 0]])
    lengths = np.array([3, 2, 1])
    packed = pack(ids, None, lengths, [[0], [1, 2]], width=3, base=2, pad_id=1)
    assert packed.input_ids.tolist() == [[11, 12, 13], [21, 22, 31]]
    assert packed.position_ids.tolist() == [[2, 3, 4], [2, 3, 2]]  # RoBERTa-style base: padding id + 1
    second = packed.attention_mask[1, 0].int().tolist()
    assert second == [[1, 1, 0], [1, 1, 0], [0, 0, 1]]
    assert packed.seq.tolist() == [0, 1, 1] and packed.start.tolist() == [0, 0, 2]
    tail = pack(ids[2:], None, lengths[2:], [[0]], width=3, base=0, pad_id=0)  # an unfilled tail: its own block
    assert tail.attention_mask[0, 0].int().tolist() == [[1, 0, 0], [0, 1, 1], [0, 1, 1]]
    additive = pack(ids, None, lengths, [[1, 2]], width=3, base=0, pad_id=0, additive=torch.float32)
    assert additive.attention_mask[0, 0, 0].tolist() == [0.0, 0.0, torch.finfo(torch.float32).min]


@pytest.mark.parametrize("pooling", ["cls", "mean"])
@pytest.mark.parametrize("attention", ["sdpa", "eager"])
def test_packed_equals_padded_for_bert(pooling: str, attention: str) -> None:
    torch.manual_seed(0)
    config = BertConfig(vocab_size=100, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                        intermediate_size=64, max_position_embeddings=64, attn_implementation=attention)
    encoder = BertModel(config, add_pooling_layer=False).eval()
    ids, mask, tt, lengths = _padded([9, 3, 14, 1, 7, 7, 12, 2], 100, types=True)
    padded = _model(encoder, pooling, packing=False, chunk_tokens=0)
    packed = _model(encoder, pooling, packing=True)
    assert packed.pack_base == 0 and padded.pack_base is None
    with torch.no_grad(), flops.EncoderCalls(encoder) as padded_calls:
        want = padded.encode_chunked(ids, mask, tt, lengths)
    with torch.no_grad(), flops.EncoderCalls(encoder) as packed_calls:
        got = packed.encode_chunked(ids, mask, tt, lengths)
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)
    # width 14: 14 | 12+2 | 9+3+1 | 7+7, 56 computed tokens against 8 rows of 14 = 112 padded (55 real)
    assert plan_packing(lengths) == (14, [[2], [6, 7], [0, 1, 3], [4, 5]])
    real = sum(int(c.lengths.sum()) for c in packed_calls.calls())
    assert (flops.padded_tokens(packed_calls.calls()), flops.padded_tokens(padded_calls.calls()), real) == (56, 112, 55)


def test_packed_equals_padded_for_roberta_positions() -> None:
    torch.manual_seed(0)
    config = RobertaConfig(vocab_size=100, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                           intermediate_size=64, max_position_embeddings=40, pad_token_id=1)
    encoder = RobertaModel(config, add_pooling_layer=False).eval()
    ids, mask, _, lengths = _padded([5, 11, 2, 8], 100)
    ids = torch.where(mask.bool(), ids, torch.ones_like(ids))  # RoBERTa pads with id 1
    packed = _model(encoder, "mean", packing=True)
    assert packed.pack_base == 2
    with torch.no_grad():
        want = _model(encoder, "mean", packing=False, chunk_tokens=0).encode_chunked(ids, mask, None, lengths)
        got = packed.encode_chunked(ids, mask, None, lengths)
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)


def test_small_chunk_limit_splits_the_packed_sequences_into_several_calls() -> None:
    tiny = load_backbone("tiny", pooling="cls", max_length=32)
    ids, mask, _, lengths = _padded([10, 9, 8, 7, 6, 5, 4, 3, 2, 1], tiny.encoder.config.vocab_size)
    one = _model(tiny.encoder, "cls", packing=True)
    many = _model(tiny.encoder, "cls", packing=True, chunk_tokens=20)  # two sequences of width 10 per call
    with torch.no_grad():
        torch.testing.assert_close(many.encode_chunked(ids, mask, None, lengths),
                                   one.encode_chunked(ids, mask, None, lengths), atol=1e-5, rtol=1e-5)


def test_gradients_flow_through_packed_rows() -> None:
    tiny = load_backbone("tiny", pooling="mean", max_length=32)
    ids, mask, _, lengths = _padded([6, 3, 5], tiny.encoder.config.vocab_size)
    grads = []
    for packing in (False, True):
        model = _model(tiny.encoder, "mean", packing=packing, chunk_tokens=0)
        model.zero_grad()
        model.encode_chunked(ids, mask, None, lengths).pow(2).sum().backward()
        grads.append(torch.cat([p.grad.flatten() for p in model.encoder.parameters() if p.grad is not None]))
    torch.testing.assert_close(grads[1], grads[0], atol=1e-4, rtol=1e-4)


def test_unsupported_encoders_and_sharing_keep_the_padded_path() -> None:
    assert position_base(torch.nn.Linear(2, 2)) is None
    config = BertConfig(vocab_size=50, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                        intermediate_size=32, model_type="bert")
    encoder = BertModel(config, add_pooling_layer=False)
    encoder.config.model_type = "deberta-v2"  # relative positions: not packed
    assert position_base(encoder) is None
