"""research/multilingual/weighted.py: the weighted factors are the product's with G = I, and with a weight G they
trade plain error for error under G, as the oblique projection promises."""

import sys
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))
from weighted import per_head, sqrtm, weighted_factor  # noqa: E402

from liteasr.factorize.lowrank import factor_weights  # noqa: E402


def outputs_of(linear: nn.Linear, n: int = 4000) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, linear.in_features, generator=g, dtype=torch.float64) * torch.linspace(3, 0.1, linear.in_features,
                                                                                              dtype=torch.float64)
    return x, x @ linear.weight.detach().double().T + linear.bias.detach().double()


def errors(module, x, y, g) -> tuple[float, float]:
    with torch.no_grad():
        e = module.double()(x) - y
    return float(e.pow(2).sum()), float((e @ g.T).pow(2).sum())


def test_identity_weight_is_the_products_factors_and_a_weight_trades_errors():
    torch.manual_seed(0)
    linear = nn.Linear(24, 32).double()
    x, y = outputs_of(linear)
    mean, cov = y.mean(0), torch.cov(y.T, correction=0)
    plain = weighted_factor(linear, mean, cov, 6, None)
    values, vectors = torch.linalg.eigh(cov)
    product = factor_weights(linear.weight, linear.bias, mean, vectors.flip(1), 6, dtype=torch.float32)
    for a, b in zip(plain.state_dict().values(), product.state_dict().values()):
        torch.testing.assert_close(a, b)  # both float32, as the product stores them
    # a weight that cares about the low-variance outputs: the weighted fit must win under G and lose plainly
    g = torch.diag(torch.linspace(0.05, 5.0, 32, dtype=torch.float64))
    weighted = weighted_factor(linear, mean, cov, 6, g)
    plain_err, plain_g = errors(plain, x, y, g)
    weighted_err, weighted_g = errors(weighted, x, y, g)
    assert weighted_g < 0.9 * plain_g
    assert plain_err < weighted_err


def test_per_head_square_root_is_block_diagonal_and_squares_back():
    a = torch.randn(8, 8, dtype=torch.float64)
    m = a @ a.T + 0.1 * torch.eye(8, dtype=torch.float64)
    root = per_head(m, 2)
    assert root[:4, 4:].abs().max() == 0 and root[4:, :4].abs().max() == 0
    torch.testing.assert_close(root[:4, :4] @ root[:4, :4], m[:4, :4])
    torch.testing.assert_close(sqrtm(m) @ sqrtm(m), m)
