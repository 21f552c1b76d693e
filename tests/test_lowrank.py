"""Math of the method on synthetic data: factorization, bias folding, statistics, the rank rule."""

import pytest
import torch
from torch import nn

from liteasr.errors import UserError
from liteasr.factorize.lowrank import factorize
from liteasr.planning.plan import RankPlan, ThresholdRule
from liteasr.calibration.stats import CovarianceStats, LayerStats

torch.manual_seed(0)


def stats_of(linear: nn.Linear, x: torch.Tensor) -> LayerStats:
    s = LayerStats.empty(linear.out_features)
    with torch.no_grad():
        s.add(linear(x))
    return s


def low_rank_linear(d_in=48, d_out=40, true_rank=8) -> nn.Linear:
    layer = nn.Linear(d_in, d_out).double()
    with torch.no_grad():
        layer.weight.copy_(torch.randn(d_out, true_rank, dtype=torch.float64) @ torch.randn(true_rank, d_in, dtype=torch.float64))
    return layer


def test_truly_low_rank_layer_is_recovered_exactly_at_its_true_rank():
    layer = low_rank_linear(true_rank=8)
    x = torch.randn(500, 48, dtype=torch.float64)
    s = stats_of(layer, x)
    values, vectors = s.spectrum()
    assert values[8:].abs().max() < 1e-9 * values[0]  # the spectrum knows the true rank
    lr = factorize(layer, s.mean, vectors, 8)
    x_new = torch.randn(100, 48, dtype=torch.float64)  # held-out inputs: exact, not just on calibration
    with torch.no_grad():
        torch.testing.assert_close(lr(x_new), layer(x_new), atol=1e-9, rtol=1e-9)
    assert lr.weight1.shape == (48, 8) and lr.weight2.shape == (8, 40)


def test_full_rank_factorization_reproduces_the_dense_layer():
    layer = nn.Linear(32, 24)
    x = torch.randn(300, 32)
    s = stats_of(layer, x)
    lr = factorize(layer, s.mean, s.spectrum()[1], 24)
    with torch.no_grad():
        torch.testing.assert_close(lr(x), layer(x), atol=1e-5, rtol=1e-5)


def test_bias_is_folded_exactly_for_constant_offset_outputs():
    # Outputs = low-rank part + a large bias; the fold y ~ V V^T(y - mu) + mu keeps the bias exactly.
    layer = low_rank_linear(true_rank=4)
    with torch.no_grad():
        layer.bias.fill_(50.0)
    x = torch.randn(400, 48, dtype=torch.float64)
    s = stats_of(layer, x)
    lr = factorize(layer, s.mean, s.spectrum()[1], 4)
    with torch.no_grad():
        torch.testing.assert_close(lr(torch.zeros(1, 48, dtype=torch.float64)), layer(torch.zeros(1, 48, dtype=torch.float64)))
    # A truncated rank projects away directions, but the mean output stays exact.
    lr2 = factorize(layer, s.mean, s.spectrum()[1], 2)
    with torch.no_grad():
        torch.testing.assert_close(lr2(x).mean(0), layer(x).mean(0), atol=1e-8, rtol=0)


def test_layer_without_bias_gets_folded_bias():
    layer = nn.Linear(16, 16, bias=False).double()
    x = torch.randn(200, 16, dtype=torch.float64) + 3.0
    s = stats_of(layer, x)
    lr = factorize(layer, s.mean, s.spectrum()[1], 16)
    with torch.no_grad():
        torch.testing.assert_close(lr(x), layer(x))


def test_merge_equals_calibrating_on_the_union():
    layer = nn.Linear(20, 12)
    a, b = torch.randn(100, 20), torch.randn(70, 20) * 2 + 1
    merged = CovarianceStats({"l": stats_of(layer, a)}, {"model_hash": "h", "clips": 1}).merge(
        CovarianceStats({"l": stats_of(layer, b)}, {"model_hash": "h", "clips": 2}))
    union = stats_of(layer, torch.cat([a, b]))
    m = merged.layers["l"]
    assert m.count == union.count == 170 and merged.meta["clips"] == 3
    torch.testing.assert_close(m.sum, union.sum, rtol=1e-12, atol=1e-9)
    torch.testing.assert_close(m.outer, union.outer, rtol=1e-12, atol=1e-9)
    torch.testing.assert_close(m.covariance, union.covariance, rtol=1e-10, atol=1e-10)


def test_merge_refuses_stats_of_another_model():
    layer = nn.Linear(4, 4)
    s = stats_of(layer, torch.randn(10, 4))
    with pytest.raises(UserError, match="different models"):
        CovarianceStats({"l": s}, {"model_hash": "a"}).merge(CovarianceStats({"l": s}, {"model_hash": "b"}))


def test_statistics_roundtrip_through_safetensors(tmp_path):
    layer = nn.Linear(8, 6)
    s = CovarianceStats({"layers.0.fc1": stats_of(layer, torch.randn(30, 8))}, {"model_hash": "x", "clips": 3})
    s.save(tmp_path / "s.safetensors")
    back = CovarianceStats.load(tmp_path / "s.safetensors")
    assert back.meta == s.meta and back.layers["layers.0.fc1"].count == 30
    assert torch.equal(back.layers["layers.0.fc1"].outer, s.layers["layers.0.fc1"].outer)
    assert back.layers["layers.0.fc1"].outer.dtype == torch.float64


def test_statistics_accumulate_in_float64_from_half_precision_outputs():
    s = LayerStats.empty(4)
    big = torch.full((2000, 4), 60000.0, dtype=torch.float16)  # squares overflow fp16 and fp32 sums lose digits
    s.add(big)
    assert s.outer.dtype == torch.float64
    assert s.outer[0, 0].item() == pytest.approx(2000 * 60000.0**2, rel=1e-12)


def test_threshold_rule_picks_smallest_multiple_reaching_the_threshold():
    rule = ThresholdRule(0.9, 0.9, rank_multiple=4)
    values = torch.tensor([50.0, 30.0, 10.0, 5.0, 3.0, 1.0, 0.5, 0.5], dtype=torch.float64)  # total 100
    # cumulative: .5 .8 .9 .95 .98 .99 .995 1.0 -> 3 needed for 0.9 -> rounded up to 4
    assert rule.rank_for(values, 0.9) == (4, pytest.approx(0.95))
    assert rule.rank_for(values, 0.99)[0] == 8
    assert ThresholdRule(0.5, 0.5, rank_multiple=1).rank_for(values, 0.5)[0] == 1
    assert rule.rank_for(torch.zeros(8, dtype=torch.float64), 0.9)[0] == 4  # constant outputs


def test_plan_keeps_layer_dense_when_factors_would_not_shrink_it():
    rule = ThresholdRule(0.99, 0.99, rank_multiple=16)
    flat = torch.ones(64, dtype=torch.float64)  # white spectrum: needs nearly full rank
    steep = torch.tensor([1000.0] * 4 + [1e-6] * 60, dtype=torch.float64)
    plan = rule.plan({"layers.0.q_proj": flat, "layers.0.fc1": steep},
                     {"layers.0.q_proj": (64, 64), "layers.0.fc1": (64, 64)}, lambda k: "proj" in k)
    assert plan.layers["layers.0.q_proj"].rank is None and "dense" in plan.layers["layers.0.q_proj"].reason
    assert plan.layers["layers.0.fc1"].rank == 16


def test_threshold_parsing_and_validation():
    assert ThresholdRule.parse("0.99:0.999") == ThresholdRule(0.99, 0.999)
    assert ThresholdRule.parse("0.95") == ThresholdRule(0.95, 0.95)
    for bad in ("0", "1.5", "-0.1:0.9", "abc", "0.9:0.9:0.9"):
        with pytest.raises(UserError):
            ThresholdRule.parse(bad)
    with pytest.raises(UserError):
        ThresholdRule(0.9, 0.9, rank_multiple=0)


def test_rank_plan_json_roundtrip_and_validation(tmp_path):
    rule = ThresholdRule(0.9, 0.9, rank_multiple=2)
    plan = rule.plan({"layers.0.fc1": torch.tensor([5.0, 1.0, 0.1, 0.0], dtype=torch.float64)},
                     {"layers.0.fc1": (16, 4)}, lambda k: False)
    plan.save(tmp_path / "p.json")
    assert RankPlan.load(tmp_path / "p.json").ranks() == plan.ranks() == {"layers.0.fc1": 2}
    (tmp_path / "bad.json").write_text('{"layers": {"layers.0.fc1": {"rank": 99, "in_features": 16, '
                                       '"out_features": 4, "explained": 1, "reason": ""}}}')
    with pytest.raises(UserError, match="outside"):
        RankPlan.load(tmp_path / "bad.json")
