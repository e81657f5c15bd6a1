import pytest
import torch

from rsdistill.losses import (
    NuclearNormPenalty,
    effective_rank,
    nuclear_norm,
    singular_values,
)


def _gen(seed):
    return torch.Generator().manual_seed(seed)


def test_conv_kernel_is_read_as_out_by_in_k_k():
    w = torch.randn(8, 3, 3, 3, generator=_gen(0))
    expected = torch.linalg.svdvals(w.reshape(8, 27)).sum()
    torch.testing.assert_close(nuclear_norm(w), expected)
    torch.testing.assert_close(singular_values(w), torch.linalg.svdvals(w.reshape(8, 27)))


def test_rank_one_matrix_norm_is_product_of_vector_norms():
    g = _gen(1)
    u = torch.randn(5, generator=g, dtype=torch.float64)
    v = torch.randn(7, generator=g, dtype=torch.float64)
    got = nuclear_norm(torch.outer(u, v))
    assert got.item() == pytest.approx((u.norm() * v.norm()).item(), rel=1e-10)


def _distinct_singular_values_matrix():
    # U diag(4, 3, 2, 1) V^T: full rank, well separated singular values, so the
    # norm is smooth there and finite differences are meaningful.
    g = _gen(2)
    u, _ = torch.linalg.qr(torch.randn(4, 4, generator=g, dtype=torch.float64))
    v, _ = torch.linalg.qr(torch.randn(6, 4, generator=g, dtype=torch.float64))
    return u @ torch.diag(torch.tensor([4.0, 3.0, 2.0, 1.0], dtype=torch.float64)) @ v.T


def test_gradcheck_in_float64():
    w = _distinct_singular_values_matrix().requires_grad_(True)
    assert nuclear_norm(w).dtype == torch.float64
    assert torch.autograd.gradcheck(nuclear_norm, (w,), eps=1e-6, atol=1e-6)


def test_gradient_matches_central_finite_difference():
    w = _distinct_singular_values_matrix()
    wg = w.clone().requires_grad_(True)
    nuclear_norm(wg).backward()
    h = 1e-6
    for i, j in [(0, 0), (1, 3), (3, 5), (2, 1)]:
        bump = torch.zeros_like(w)
        bump[i, j] = h
        fd = (nuclear_norm(w + bump) - nuclear_norm(w - bump)).item() / (2 * h)
        assert wg.grad[i, j].item() == pytest.approx(fd, abs=1e-6)


def test_effective_rank_of_rank_two_matrix():
    g = _gen(3)
    w = torch.randn(4, 2, generator=g) @ torch.randn(2, 27, generator=g)
    assert effective_rank(w) == 2
    assert effective_rank(w.reshape(4, 3, 3, 3)) == 2
    assert effective_rank(torch.randn(4, 27, generator=g)) == 4
    assert effective_rank(torch.zeros(4, 27)) == 0


def test_float32_under_bf16_autocast():
    w = torch.randn(8, 3, 3, 3, generator=_gen(4))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        got = nuclear_norm(w.bfloat16())
    assert got.dtype == torch.float32
    assert got.item() == pytest.approx(nuclear_norm(w).item(), rel=1e-2)


def test_penalty_is_beta_times_norm_and_skips_svd_at_zero():
    w = torch.randn(8, 3, 3, 3, generator=_gen(5), requires_grad=True)
    terms = NuclearNormPenalty(beta=0.25)(w)
    assert set(terms) == {"nuclear"}
    torch.testing.assert_close(terms["nuclear"], 0.25 * nuclear_norm(w))
    terms["nuclear"].backward()
    assert w.grad is not None and w.grad.abs().sum() > 0
    assert NuclearNormPenalty(beta=0.0)(w)["nuclear"].item() == 0.0


def test_vectors_are_rejected():
    with pytest.raises(ValueError, match="shape"):
        nuclear_norm(torch.ones(5))
