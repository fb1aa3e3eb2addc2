"""Information quantities: docs/methods.md's analytic cases, KL reductions, InfoNCE bounds."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from infomtl.modeling.bounds import KL_REDUCTIONS, gaussian_kl, info_nce, reduce_kl

# --------------------------------------------------------------------------- #
# gaussian_kl
# --------------------------------------------------------------------------- #


def test_gaussian_kl_matches_the_methods_md_case() -> None:
    mu = torch.tensor([1.0, 0.0])
    logvar = torch.tensor([0.0, math.log(0.25)])
    kl = gaussian_kl(mu, logvar)
    assert kl.shape == (2,)
    assert kl.tolist() == pytest.approx([0.5, 0.318147], abs=1e-6)
    assert float(kl.mean()) == pytest.approx(0.409074, abs=1e-6)


def test_gaussian_kl_is_zero_at_the_standard_normal() -> None:
    kl = gaussian_kl(torch.zeros(3, 4), torch.zeros(3, 4))
    assert torch.equal(kl, torch.zeros(3, 4))


def test_gaussian_kl_keeps_the_shape_and_computes_in_fp32() -> None:
    mu = torch.randn(5, 3, dtype=torch.float64)
    kl = gaussian_kl(mu, torch.zeros_like(mu))
    assert kl.shape == (5, 3)
    assert kl.dtype == torch.float32
    torch.testing.assert_close(kl, 0.5 * mu.float().pow(2))


@settings(max_examples=50, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.floats(-5, 5, allow_nan=False),
            st.floats(-5, 5, allow_nan=False),
        ),
        min_size=1,
        max_size=8,
    )
)
def test_gaussian_kl_is_non_negative_and_finite(pairs: list[tuple[float, float]]) -> None:
    mu = torch.tensor([p[0] for p in pairs])
    logvar = torch.tensor([p[1] for p in pairs])
    kl = gaussian_kl(mu, logvar)
    assert torch.isfinite(kl).all()
    assert (kl >= -1e-6).all()


# --------------------------------------------------------------------------- #
# reduce_kl
# --------------------------------------------------------------------------- #

KL_ROWS = torch.tensor([1.0, 2.0, 3.0, 6.0])
LABELS = torch.tensor([0, 0, 1, 1])


def test_class_balanced_kl_sums_the_per_class_means_by_hand() -> None:
    # class 0: mean(1, 2) = 1.5; class 1: mean(3, 6) = 4.5; class 2 absent: adds nothing
    assert float(reduce_kl(KL_ROWS, "class_balanced", LABELS, 3)) == pytest.approx(6.0)


def test_class_balanced_kl_with_one_row_per_class_is_the_sum() -> None:
    rows = torch.tensor([0.5, 0.25, 2.0])
    labels = torch.tensor([2, 0, 1])
    assert float(reduce_kl(rows, "class_balanced", labels, 3)) == pytest.approx(2.75)


def test_mean_and_sum_reductions() -> None:
    assert float(reduce_kl(KL_ROWS, "mean", LABELS, 3)) == pytest.approx(3.0)
    assert float(reduce_kl(KL_ROWS, "sum", LABELS, 3)) == pytest.approx(12.0)
    assert float(reduce_kl(KL_ROWS, "sum")) == pytest.approx(12.0)


def test_class_balanced_without_labels_falls_back_to_the_mean() -> None:
    assert float(reduce_kl(KL_ROWS, "class_balanced")) == pytest.approx(3.0)
    assert float(reduce_kl(KL_ROWS, "class_balanced", None, 3)) == pytest.approx(3.0)


def test_unknown_kl_reduction_is_rejected_with_the_valid_names() -> None:
    with pytest.raises(ValueError, match="class_balanced"):
        reduce_kl(KL_ROWS, "median", LABELS, 3)
    assert KL_REDUCTIONS == ("class_balanced", "mean", "sum")


def test_class_balanced_kl_propagates_gradients_to_every_row() -> None:
    rows = KL_ROWS.clone().requires_grad_(True)
    reduce_kl(rows, "class_balanced", LABELS, 3).backward()
    # d/dkl_i of mean within a class of size 2 = 1/2
    assert rows.grad.tolist() == pytest.approx([0.5, 0.5, 0.5, 0.5])


@settings(max_examples=40, deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(0, 3), st.floats(0, 10, allow_nan=False)), min_size=1, max_size=20
    )
)
def test_class_balanced_kl_equals_a_loop_over_present_classes(
    rows: list[tuple[int, float]],
) -> None:
    labels = torch.tensor([r[0] for r in rows])
    kl = torch.tensor([r[1] for r in rows], dtype=torch.float64)
    expected = 0.0
    for c in sorted(set(labels.tolist())):
        members = [v for (y, v) in rows if y == c]
        expected += sum(members) / len(members)
    got = float(reduce_kl(kl, "class_balanced", labels, 4))
    assert got == pytest.approx(expected, rel=1e-9, abs=1e-9)


# --------------------------------------------------------------------------- #
# info_nce
# --------------------------------------------------------------------------- #


def test_info_nce_matches_the_methods_md_case() -> None:
    eye = torch.eye(2)
    loss = info_nce(eye, eye, tau=1.0)
    assert float(loss) == pytest.approx(math.log(1 + math.exp(-1)), abs=1e-6)
    assert float(loss) == pytest.approx(0.313262, abs=1e-6)


def test_info_nce_equals_cross_entropy_of_normalised_similarities() -> None:
    g = torch.Generator().manual_seed(0)
    h, h_pos = torch.randn(6, 5, generator=g), torch.randn(6, 5, generator=g)
    tau = 0.3
    q = h / h.norm(dim=1, keepdim=True)
    k = h_pos / h_pos.norm(dim=1, keepdim=True)
    expected = F.cross_entropy(q @ k.T / tau, torch.arange(6))
    assert float(info_nce(h, h_pos, tau)) == pytest.approx(float(expected), rel=1e-6)


def test_info_nce_is_invariant_to_the_scale_of_the_views() -> None:
    g = torch.Generator().manual_seed(1)
    h, h_pos = torch.randn(4, 3, generator=g), torch.randn(4, 3, generator=g)
    a = info_nce(h, h_pos, 0.5)
    b = info_nce(3.0 * h, 0.1 * h_pos, 0.5)
    assert float(a) == pytest.approx(float(b), rel=1e-5)


def test_info_nce_of_identical_orthogonal_views_vanishes_as_tau_shrinks() -> None:
    q, _ = torch.linalg.qr(torch.randn(8, 8, generator=torch.Generator().manual_seed(2)))
    losses = [float(info_nce(q, q, tau)) for tau in (1.0, 0.1, 0.01)]
    assert losses[0] > losses[1] > losses[2]
    assert losses[2] < 1e-6
    # the bound log B − L then reaches log B
    assert math.log(8) - losses[2] == pytest.approx(math.log(8), abs=1e-6)


def test_info_nce_gradient_reaches_both_views() -> None:
    g = torch.Generator().manual_seed(3)
    h = torch.randn(4, 3, generator=g, requires_grad=True)
    h_pos = torch.randn(4, 3, generator=g, requires_grad=True)
    info_nce(h, h_pos).backward()
    assert h.grad is not None and h.grad.abs().sum() > 0
    assert h_pos.grad is not None and h_pos.grad.abs().sum() > 0


@settings(max_examples=50, deadline=None)
@given(
    batch=st.integers(1, 8),
    dim=st.integers(1, 6),
    tau=st.sampled_from([0.05, 0.1, 0.5, 1.0, 2.0]),
    seed=st.integers(0, 2**31 - 1),
)
def test_info_nce_is_non_negative_finite_and_bounded(
    batch: int, dim: int, tau: float, seed: int
) -> None:
    g = torch.Generator().manual_seed(seed)
    h = torch.randn(batch, dim, generator=g)
    h_pos = torch.randn(batch, dim, generator=g)
    loss = float(info_nce(h, h_pos, tau))
    assert math.isfinite(loss)
    assert loss >= -1e-6
    # cosine similarities lie in [-1, 1], so L ≤ log B + 2/τ; and log B − L ≤ log B
    assert loss <= math.log(batch) + 2.0 / tau + 1e-4
    assert math.log(batch) - loss <= math.log(batch) + 1e-6


def test_info_nce_is_computed_in_fp32_under_autocast() -> None:
    import torch

    from infomtl.modeling.bounds import info_nce

    gen = torch.Generator().manual_seed(0)
    h, h_pos = torch.randn(16, 8, generator=gen), torch.randn(16, 8, generator=gen)
    plain = info_nce(h, h_pos, tau=0.1)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        mixed = info_nce(h, h_pos, tau=0.1)
    assert mixed.dtype == torch.float32
    torch.testing.assert_close(mixed, plain)
