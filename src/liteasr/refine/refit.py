"""Anchored closed-form refit: fit each factored projection to the *dense* model's output, given the
input it actually sees in the compressed model.

Layer by layer, stage by stage (q/k/v, out_proj, fc1, fc2), over the calibration windows:

    x = input of the projection on the compressed path,  y = output of the dense projection on the dense path
                                                                   (computed in float64 from its input)
    A = argmin ||[x, 1] A - y||^2 + lam ||A - [W^T; b^T]||^2         (ridge anchored at the dense weights)
      = (G + lam I)^-1 (H + lam [W^T; b^T]),  G = sum [x,1][x,1]^T,  H = sum [x,1] y^T = C [W^T; b^T],
        C = sum [x,1][x_dense,1]^T   (float64, streamed)

then the rank-k principal components of the fitted outputs [x, 1] A (their covariance is A^T (G/n) A - mu mu^T,
so no activation is ever stored) give the factors exactly as for plain PCA. When the compressed path's
inputs equal the dense ones, H = G [W^T; b^T], A is the dense layer and the factors are the PCA factors.
Memory is O(d_in^2 + d_in d_out) per stage. Each layer's errors are thus corrected by the layers after it,
rather than fitted to their own shifted outputs (which is what the old sequential calibration did).
"""

from __future__ import annotations

import copy

import torch
from tqdm.auto import tqdm

from liteasr.calibration.calibrate import DEFAULT_PACKING
from liteasr.data.audio import Clip
from liteasr.factorize.compress import to_lite
from liteasr.factorize.lowrank import factor_weights
from liteasr.models import whisper
from liteasr.planning.plan import RankPlan
from liteasr.refine.lockstep import Lockstep, split_clips

DEFAULT_RIDGE = 1e-2  # times the mean diagonal of G/n, when no calibration clips are held out to choose it
# Ridges tried on the held-out clips. Too small overfits the calibration voices (on 6 clips, 1e-4 raised the
# encoder error on unseen speakers 43% above PCA's, where 1e-2 cut it 30% below); too large is plain PCA
# of the compressed path.
RIDGE_GRID = (1e-4, 1e-3, 1e-2, 1e-1, 1.0, 10.0)


class RegressionStats:
    """G = sum x~ x~^T over the compressed path's inputs and C = sum x~ x~_d^T against the dense path's
    inputs (x~ = [x, 1]), in float64. The dense outputs are y = x~_d [W^T; b^T], so H = C [W^T; b^T]
    for every projection that reads this input: exact, and shared by q, k and v."""

    def __init__(self, d_in: int):
        self.count = 0
        self.gram = torch.zeros(d_in + 1, d_in + 1, dtype=torch.float64)
        self.cross = torch.zeros(d_in + 1, d_in + 1, dtype=torch.float64)

    def __add__(self, other: "RegressionStats") -> "RegressionStats":
        total = RegressionStats(len(self.gram) - 1)
        total.count = self.count + other.count
        total.gram, total.cross = self.gram + other.gram, self.cross + other.cross
        return total

    def add(self, x: torch.Tensor, x_dense: torch.Tensor) -> None:
        x, x_dense = _with_ones(x), _with_ones(x_dense)
        self.count += len(x)
        self.gram.addmm_(x.T, x)
        self.cross.addmm_(x.T, x_dense)


def _with_ones(x: torch.Tensor) -> torch.Tensor:
    x = x.reshape(-1, x.shape[-1]).to(torch.float64).cpu()
    return torch.cat([x, torch.ones(len(x), 1, dtype=torch.float64)], 1)


def anchor(dense: torch.nn.Linear) -> torch.Tensor:
    """[W^T; b^T], the dense projection as one [d_in + 1, d_out] matrix acting on [x, 1]."""
    w = dense.weight.detach().to(torch.float64).cpu()
    b = dense.bias.detach().to(torch.float64).cpu() if dense.bias is not None else torch.zeros(w.shape[0], dtype=torch.float64)
    return torch.cat([w.T, b[None]], 0)


def solve(w0: torch.Tensor, g: torch.Tensor, h: torch.Tensor, rank: int, ridge: float):
    """The ridge fit A and its rank-`rank` factored form A_k, both [d_in + 1, d_out] maps of [x, 1], from
    the normalised sums g = G/n and h = H/n. A_k = A V V^T + e (mu - V V^T mu)^T is what `factor_weights`
    builds (the bias folded exactly), so it is the map that runs."""
    lam = ridge * float(g.diagonal().mean())
    a = torch.linalg.solve(g + lam * torch.eye(len(g), dtype=torch.float64), h + lam * w0)
    mu = a.T @ g[-1]  # the constant column's row of G/n is the mean of x~
    cov = a.T @ g @ a - torch.outer(mu, mu)
    vectors = torch.linalg.eigh((cov + cov.T) / 2)[1].flip(1)
    v = vectors[:, :rank]
    a_k = a @ v @ v.T
    a_k[-1] += mu - v @ (v.T @ mu)
    return a, a_k, mu, vectors


def held_out_error(a_k: torch.Tensor, held: RegressionStats, w0: torch.Tensor) -> float:
    """Mean squared error of x~ A_k against the dense outputs on the held-out windows, up to a constant
    that does not depend on A_k: tr(A_k^T g A_k) - 2 tr(A_k^T c W0)."""
    g, c = held.gram / held.count, held.cross / held.count
    return float((a_k * (g @ a_k)).sum() - 2 * (a_k * (c @ w0)).sum())


def choose_ridge(dense: torch.nn.Linear, fitted: RegressionStats, held: RegressionStats, rank: int,
                 grid: tuple[float, ...] = RIDGE_GRID) -> float:
    """The ridge of `grid` whose factored fit on `fitted` has the lowest error on `held`."""
    w0 = anchor(dense)
    g, h = fitted.gram / fitted.count, fitted.cross @ w0 / fitted.count
    errors = [held_out_error(solve(w0, g, h, rank, r)[1], held, w0) for r in grid]
    return grid[min(range(len(grid)), key=errors.__getitem__)]


def fit(dense: torch.nn.Linear, gram: torch.Tensor, cross: torch.Tensor, count: int, rank: int,
        ridge: float = DEFAULT_RIDGE):
    """The refit LowRankLinear of `rank` for one projection from its regression sums: `gram` = G and
    `cross` = H = sum x~ y_dense^T."""
    w0 = anchor(dense)
    a, _, mu, vectors = solve(w0, gram / count, cross / count, rank, ridge)
    return factor_weights(a[:-1].T, a[-1], mu, vectors, rank, dtype=dense.weight.dtype, device=dense.weight.device)


class _Captured(Exception):
    """Raised by the last capture hook of a stage: the rest of the layer is not needed."""


def _capture(modules: dict[str, torch.nn.Module], store: dict) -> list:
    """Forward hooks storing each module's input into `store`; once all are
    stored, the layer's forward is cut short."""
    def hook(key):
        def f(module, inputs, output):
            store[key] = inputs[0]
            if len(store) == len(modules):
                raise _Captured
        return f
    return [m.register_forward_hook(hook(k)) for k, m in modules.items()]


def _run_until_captured(layer: torch.nn.Module, hidden: torch.Tensor, store: dict) -> None:
    store.clear()
    try:
        whisper.run_layer(layer, hidden)
    except _Captured:
        pass


def refit(loaded: whisper.LoadedModel, plan: RankPlan, clips: list[Clip], packing: str = DEFAULT_PACKING,
          batch_size: int = 8, ridge: float | None = None, held_out: float = 0.125, seed: int = 0,
          progress: bool = True):
    """The lite-whisper model for `plan`, every factored projection refit against the dense model.

    With `ridge=None` each projection's ridge is chosen from RIDGE_GRID on a `held_out` fraction of the
    clips (chosen by `seed`), and the final fit then uses all clips."""
    student = copy.deepcopy(loaded.model).eval()
    fitted, held = split_clips(clips, held_out, seed) if ridge is None else (clips, [])
    steps = Lockstep(loaded, student, fitted, packing, batch_size, progress, held_clips=held)
    layers = whisper.encoder_layers(student)
    bar = tqdm(total=len(layers) * len(whisper.LAYER_STAGES), desc="anchored refit", disable=not progress)
    chosen: list[float] = []
    for index in range(len(layers)):
        dense_layer, student_layer = steps.layers()
        for stage in whisper.LAYER_STAGES:
            keys = [f"layers.{index}.{name}" for name in stage if plan.layers[f"layers.{index}.{name}"].rank is not None]
            if keys:
                chosen += _refit_stage(steps, dense_layer, student_layer, keys, plan, ridge)
                bar.set_postfix(ridge=f"{chosen[-1]:g}")
            bar.update(1)
        steps.advance()
    bar.close()
    return to_lite(student)


def _refit_stage(steps: Lockstep, dense_layer, student_layer, keys: list[str], plan: RankPlan,
                 ridge: float | None) -> list[float]:
    """Refit the stage's projections in place; the ridges used, one per projection."""
    names = [whisper.split_key(k)[1] for k in keys]
    dense = {k: getattr(whisper.projection_parent(dense_layer, n), n) for k, n in zip(keys, names)}
    student = {k: getattr(whisper.projection_parent(student_layer, n), n) for k, n in zip(keys, names)}
    dense_inputs, inputs = {}, {}
    handles = _capture(dense, dense_inputs) + _capture(student, inputs)
    fitted, held = RegressionStats(dense[keys[0]].in_features), RegressionStats(dense[keys[0]].in_features)
    try:
        for h_dense, h_student, is_held in zip(steps.dense, steps.compressed, steps.held):
            _run_until_captured(dense_layer, h_dense, dense_inputs)
            _run_until_captured(student_layer, h_student, inputs)
            # the stage's projections share one input
            (held if is_held else fitted).add(inputs[keys[0]], dense_inputs[keys[0]])
    finally:
        for handle in handles:
            handle.remove()
    total, used = fitted + held, []
    for key in keys:
        rank = plan.layers[key].rank
        used.append(ridge if ridge is not None else choose_ridge(dense[key], fitted, held, rank))
        module = fit(dense[key], total.gram, total.cross @ anchor(dense[key]), total.count, rank, used[-1])
        whisper.replace_linear(steps.student, key, module)
    return used
