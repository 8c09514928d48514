"""Training: generic model on windows pooled from every symbol, and per-symbol specialists.

Loss: mean Student-T negative log-likelihood over (window, target, horizon) of the targets divided
by the window scale (window-normalised units, so symbols of any volatility weigh the same).  Windows
are drawn from the train split only (targets inside it); validation uses windows whose targets lie
in the validation split (or explicit windows, ``train_index`` / ``val_index``).  AdamW (decoupled
weight decay on matrices only) with linear warm-up then cosine decay, global-norm clipping, one
jitted step per batch, reshuffled window order each epoch, early stopping on the validation loss
(the best epoch's parameters are returned).
"""

from __future__ import annotations

import dataclasses
import functools
import time
from typing import Callable, Optional, Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxport.data.errors import DataError
from jaxport.data.market import MarketData
from jaxport.data.split import SplitBounds
from jaxport.forecast.config import ForecasterConfig, TrainConfig, specialist_train_config
from jaxport.forecast.distribution import student_t_logpdf
from jaxport.forecast.model import init_params, predict_normalised
from jaxport.forecast.windows import (
    SeriesArrays,
    check_market_columns,
    gather_windows,
    normalise_window,
    series_arrays,
    split_window_range,
    symbol_indices,
    window_index,
)

LogFn = Callable[[int, dict], None]
#: The per-epoch lists of ``TrainResult.history``.
_HISTORY_KEYS = ("epoch", "steps", "train_loss", "val_loss", "windows_per_s", "wall_s")


@dataclasses.dataclass
class TrainResult:
    """Outcome of :func:`train_forecaster`.

    params: best-validation parameters.  history: per-epoch lists ``epoch, steps, train_loss,
    val_loss, windows_per_s, wall_s`` (losses: mean NLL per target element, window-normalised
    units).  initial_val_loss: validation loss of the starting parameters.  windows_per_s: training
    throughput over all steps after the first (compilation excluded).
    """

    params: dict
    config: ForecasterConfig
    train_config: TrainConfig
    history: dict
    initial_val_loss: float
    best_val_loss: float
    best_epoch: int
    steps: int
    wall_s: float
    windows_per_s: float
    num_train_windows: int
    num_val_windows: int
    stopped_early: bool

    def summary(self) -> dict:
        """JSON-ready numbers (no parameters)."""
        return {
            "config": self.config.to_dict(),
            "train_config": self.train_config.to_dict(),
            "history": self.history,
            "initial_val_loss": self.initial_val_loss,
            "best_val_loss": self.best_val_loss,
            "best_epoch": self.best_epoch,
            "steps": self.steps,
            "wall_s": self.wall_s,
            "windows_per_s": self.windows_per_s,
            "num_train_windows": self.num_train_windows,
            "num_val_windows": self.num_val_windows,
            "stopped_early": self.stopped_early,
        }


@dataclasses.dataclass
class SpecialistResult:
    """Outcome of :func:`finetune_specialist`.

    params: the specialist's parameters if ``kept`` else the generic ones.  generic_val_nll /
    specialist_val_nll: validation NLL on this symbol's validation windows (window-normalised units,
    mean per target element) of the generic model and of the best fine-tuned epoch.
    """

    symbol: str
    params: dict
    kept: bool
    generic_val_nll: float
    specialist_val_nll: float
    train: TrainResult

    def summary(self) -> dict:
        return {
            "symbol": self.symbol,
            "kept": self.kept,
            "generic_val_nll": self.generic_val_nll,
            "specialist_val_nll": self.specialist_val_nll,
            "steps": self.train.steps,
            "wall_s": self.train.wall_s,
        }


def _window_nll(
    params, config: ForecasterConfig, series: SeriesArrays, index, *, deterministic=True, key=None
):
    """NLL ``[B, K, H]`` (normalised units) of windows ``index``."""
    x_raw, y_raw = gather_windows(series, index, config)
    x, s = normalise_window(x_raw, config)
    y = y_raw / s[:, None, None]
    loc, scale, dof = predict_normalised(
        params, config, x, deterministic=deterministic, dropout_key=key
    )
    return -student_t_logpdf(y, loc, scale, dof)


class _FlatGroups:
    """Two flat vectors (``decay``: matrices, ``no_decay``: norms/biases) <-> the params tree.

    The optimiser runs on these two vectors instead of ~10 leaves per block: identical maths
    (AdamW is element-wise; the clipping norm is global), far fewer XLA ops, so faster compilation.
    """

    def __init__(self, params):
        leaves, self.treedef = jax.tree_util.tree_flatten(params)
        self.shapes = [tuple(leaf.shape) for leaf in leaves]
        self.groups = {
            "decay": [i for i, leaf in enumerate(leaves) if leaf.ndim >= 2],
            "no_decay": [i for i, leaf in enumerate(leaves) if leaf.ndim < 2],
        }

    def flatten(self, tree) -> dict:
        leaves = jax.tree_util.tree_leaves(tree)
        return {
            g: jnp.concatenate([leaves[i].reshape(-1) for i in idx])
            for g, idx in self.groups.items()
        }

    def unflatten(self, flat: dict):
        out = [None] * len(self.shapes)
        for g, idx in self.groups.items():
            off = 0
            for i in idx:
                n = int(np.prod(self.shapes[i], dtype=np.int64))
                out[i] = flat[g][off : off + n].reshape(self.shapes[i])
                off += n
        return self.treedef.unflatten(out)


def make_optimizer(grad_clip: float, weight_decay: float) -> optax.GradientTransformation:
    """Clip then AdamW over ``{"decay", "no_decay"}`` flat groups (weight decay on matrices only);
    the learning rate is an injected hyper-parameter set every step from the schedule."""
    return optax.chain(
        optax.clip_by_global_norm(grad_clip),
        optax.inject_hyperparams(optax.adamw)(
            learning_rate=0.0, weight_decay=weight_decay, mask={"decay": True, "no_decay": False}
        ),
    )


def init_optimizer(params, grad_clip: float, weight_decay: float):
    return make_optimizer(grad_clip, weight_decay).init(_FlatGroups(params).flatten(params))


@functools.partial(
    jax.jit, static_argnames=("config", "grad_clip", "weight_decay"), donate_argnums=(0, 1)
)
def _train_step(
    params, opt_state, series, index, lr, key, step, *, config, grad_clip, weight_decay
):
    tx = make_optimizer(grad_clip, weight_decay)
    key = jax.random.fold_in(key, step)
    groups = _FlatGroups(params)
    deterministic = config.dropout == 0.0

    def loss_fn(p):
        return jnp.mean(_window_nll(p, config, series, index, deterministic=deterministic, key=key))

    loss, grads = jax.value_and_grad(loss_fn)(params)
    opt_state[1].hyperparams["learning_rate"] = jnp.asarray(lr, jnp.float32)
    flat = groups.flatten(params)
    updates, opt_state = tx.update(groups.flatten(grads), opt_state, flat)
    return groups.unflatten(optax.apply_updates(flat, updates)), opt_state, loss


@functools.partial(jax.jit, static_argnames=("config",))
def _eval_sum(params, series, index, weight, *, config):
    nll = _window_nll(params, config, series, index)
    return jnp.sum(jnp.mean(nll, axis=(1, 2)) * weight)


def mean_window_nll(
    params, config: ForecasterConfig, series: SeriesArrays, index: np.ndarray, batch: int = 2048
) -> float:
    """Mean NLL per target element over windows ``index [M, 2]`` (batches padded to ``batch`` so
    every call reuses one compiled program)."""
    M = int(index.shape[0])
    if M == 0:
        return float("nan")
    total = 0.0
    for a in range(0, M, batch):
        chunk = index[a : a + batch]
        n = chunk.shape[0]
        w = np.zeros(batch, np.float32)
        w[:n] = 1.0
        if n < batch:
            chunk = np.concatenate([chunk, np.repeat(chunk[-1:], batch - n, axis=0)])
        total += float(_eval_sum(params, series, jnp.asarray(chunk), jnp.asarray(w), config=config))
    return total / M


def split_windows(
    market: MarketData, bounds: SplitBounds, config: ForecasterConfig, split: str, symbols=None
) -> np.ndarray:
    """(symbol, t) windows ``[M, 2]`` whose targets lie in ``split`` (optionally some symbols
    only)."""
    first, last = split_window_range(split, bounds, config)
    return window_index(
        market.num_symbols,
        first,
        last,
        None if symbols is None else symbol_indices(market, symbols, "forecaster"),
    )


def _subsample(index: np.ndarray, limit: Optional[int]) -> np.ndarray:
    if limit is None or index.shape[0] <= limit:
        return index
    pick = np.linspace(0, index.shape[0] - 1, limit).round().astype(np.int64)
    return index[pick]


def _explicit_index(market: MarketData, index, config: ForecasterConfig, name: str) -> np.ndarray:
    """``index`` as int32 ``[M, 2]`` (symbol, window end day t), checked against ``market``."""
    idx = np.asarray(index, np.int32).reshape(-1, 2)
    T, C, H = market.num_days, config.context, config.horizon
    if idx.shape[0] and (
        idx[:, 1].min() < C
        or idx[:, 1].max() + H > T - 1
        or idx[:, 0].min() < 0
        or idx[:, 0].max() >= market.num_symbols
    ):
        raise DataError(
            f"forecaster: {name} windows out of range (symbols 0..{market.num_symbols - 1}, "
            f"window end days {C} <= t <= {T - 1 - H})"
        )
    return idx


def _train_and_val_windows(
    market: MarketData,
    bounds: SplitBounds | None,
    config: ForecasterConfig,
    tc: TrainConfig,
    symbols,
    train_index,
    val_index,
) -> tuple[np.ndarray, np.ndarray]:
    """The training and (subsampled) early-stopping windows ``[M, 2]`` of :func:`train_forecaster`;
    DataError when either set is empty."""
    if train_index is None:
        train_idx = split_windows(market, bounds, config, "train", symbols)
    else:
        train_idx = _explicit_index(market, train_index, config, "train")
    if val_index is None:
        val_idx = split_windows(market, bounds, config, "val", symbols)
    else:
        val_idx = _explicit_index(market, val_index, config, "validation")
    val_idx = _subsample(val_idx, tc.max_val_windows)
    if train_idx.shape[0] == 0 or val_idx.shape[0] == 0:
        raise DataError(
            f"forecaster: no complete train/validation window (train={train_idx.shape[0]}, "
            f"val={val_idx.shape[0]}); need context={config.context} + "
            f"horizon={config.horizon} days per split"
        )
    return train_idx, val_idx


def _initial_state(config: ForecasterConfig, tc: TrainConfig, params: dict | None):
    """``(params, optimiser state, dropout key)`` at step 0: a private copy of ``params`` (the
    step donates its buffers), or a fresh initialisation from ``tc.seed``."""
    key = jax.random.PRNGKey(tc.seed)
    init_key, drop_key = jax.random.split(key)
    params = init_params(config, init_key) if params is None else params
    params = jax.tree_util.tree_map(jnp.array, params)
    return params, init_optimizer(params, tc.grad_clip, tc.weight_decay), drop_key


def _step_counts(tc: TrainConfig, num_windows: int) -> tuple[int, int, int]:
    """``(batch size, steps per epoch, total steps)`` over ``num_windows`` training windows."""
    batch = int(min(tc.batch_size, num_windows))
    steps_per_epoch = num_windows // batch
    total_steps = steps_per_epoch * tc.epochs
    if tc.max_steps is not None:
        total_steps = min(total_steps, tc.max_steps)
    return batch, steps_per_epoch, total_steps


def _learning_rates(tc: TrainConfig, total_steps: int) -> np.ndarray:
    """The learning rate of each step ``[max(total_steps, 1)]``: linear warm-up, cosine decay."""
    schedule = optax.warmup_cosine_decay_schedule(
        init_value=0.0,
        peak_value=tc.learning_rate,
        warmup_steps=min(tc.warmup_steps, max(total_steps - 1, 0)),
        decay_steps=max(total_steps, 1),
        end_value=tc.learning_rate * tc.final_lr_fraction,
    )
    return np.asarray(jax.vmap(schedule)(jnp.arange(max(total_steps, 1))), dtype=np.float64)


def _train_epoch(
    params, opt_state, step, series, batches, lrs, drop_key, config, tc, log_fn, prefix
):
    """One jitted step per batch of windows (host ``[B, 2]`` arrays) from global step ``step``:
    ``(params, opt_state, step, losses, untimed_s, untimed_windows)``, the last two the time and
    windows of the compiling first step of the run (zero in later epochs)."""
    losses = []
    epoch_t0, untimed_s, untimed_windows = time.perf_counter(), 0.0, 0
    for batch_idx in batches:
        lr = float(lrs[step])
        params, opt_state, loss = _train_step(
            params,
            opt_state,
            series,
            jnp.asarray(batch_idx),
            lr,
            drop_key,
            step,
            config=config,
            grad_clip=tc.grad_clip,
            weight_decay=tc.weight_decay,
        )
        losses.append(loss)
        step += 1
        if step == 1:  # the compiling step is excluded from the throughput
            loss.block_until_ready()
            untimed_s, untimed_windows = time.perf_counter() - epoch_t0, len(batch_idx)
        if log_fn is not None and step % tc.log_every == 0:
            log_fn(step, {f"{prefix}train_loss": float(loss), f"{prefix}lr": lr})
    return params, opt_state, step, losses, untimed_s, untimed_windows


def _record_epoch(history: dict, log_fn: LogFn | None, prefix: str, step: int, **row) -> None:
    """Append one epoch's ``row`` to ``history`` and log its losses and throughput."""
    for k, v in row.items():
        history[k].append(v)
    if log_fn is not None:
        log_fn(
            step,
            {
                f"{prefix}epoch_train_loss": row["train_loss"],
                f"{prefix}val_loss": row["val_loss"],
                f"{prefix}windows_per_s": row["windows_per_s"],
            },
        )


def train_forecaster(
    market: MarketData,
    bounds: SplitBounds | None,
    config: ForecasterConfig | None = None,
    train_config: TrainConfig | None = None,
    *,
    params: dict | None = None,
    symbols: Sequence | None = None,
    log_fn: LogFn | None = None,
    log_prefix: str = "forecaster/",
    train_index: np.ndarray | None = None,
    val_index: np.ndarray | None = None,
) -> TrainResult:
    """Train (or continue training ``params``) on the train split of ``market``.

    symbols: restrict training/validation windows to these symbols (names or indices); default all.
    train_index / val_index: explicit windows ``[M, 2]`` = (symbol, window end day t; targets are
    days ``t+1 .. t+horizon``) to train / early-stop on instead of the split's (``symbols`` is then
    ignored for that set; ``bounds`` may be None when both are given).  ``max_val_windows`` still
    subsamples the early-stopping windows.
    log_fn(step, {name: float}): called every ``log_every`` steps (train loss, learning rate) and
    after each epoch (validation loss, windows/s), e.g. a TensorBoard writer.  Raises DataError when
    the split holds no complete window.
    """
    config = config or ForecasterConfig()
    tc = train_config or TrainConfig()
    t0 = time.perf_counter()
    if bounds is None and (train_index is None or val_index is None):
        raise DataError("forecaster: give split bounds, or both train_index and val_index")
    check_market_columns(config, market)
    series = series_arrays(market, config.horizon)
    train_idx, val_idx = _train_and_val_windows(
        market, bounds, config, tc, symbols, train_index, val_index
    )
    params, opt_state, drop_key = _initial_state(config, tc, params)
    M = train_idx.shape[0]
    batch, steps_per_epoch, total_steps = _step_counts(tc, M)
    lrs = _learning_rates(tc, total_steps)
    rng = np.random.default_rng(tc.seed)
    history = {k: [] for k in _HISTORY_KEYS}
    initial_val = mean_window_nll(params, config, series, val_idx, tc.eval_batch_size)
    best_val, best_epoch, bad_epochs = float("inf"), 0, 0
    best_params = jax.tree_util.tree_map(jnp.copy, params)
    step, stopped_early = 0, False
    timed_windows, timed_s = 0, 0.0
    for epoch in range(1, tc.epochs + 1):
        if step >= total_steps:
            break
        perm = rng.permutation(M)
        batches = [
            train_idx[perm[b * batch : (b + 1) * batch]]
            for b in range(min(steps_per_epoch, total_steps - step))
        ]
        epoch_t0, epoch_windows = time.perf_counter(), batch * len(batches)
        params, opt_state, step, losses, untimed_s, untimed_windows = _train_epoch(
            params, opt_state, step, series, batches, lrs, drop_key, config, tc, log_fn, log_prefix
        )
        train_loss = float(jnp.mean(jnp.stack(losses))) if losses else float("nan")
        epoch_s = time.perf_counter() - epoch_t0
        timed_s += epoch_s - untimed_s
        timed_windows += epoch_windows - untimed_windows
        val = mean_window_nll(params, config, series, val_idx, tc.eval_batch_size)
        _record_epoch(
            history,
            log_fn,
            log_prefix,
            step,
            epoch=epoch,
            steps=step,
            train_loss=train_loss,
            val_loss=val,
            windows_per_s=epoch_windows / max(epoch_s, 1e-9),
            wall_s=time.perf_counter() - t0,
        )
        if val < best_val:
            best_val, best_epoch, bad_epochs = val, epoch, 0
            # params buffers are donated next step
            best_params = jax.tree_util.tree_map(jnp.copy, params)
        else:
            bad_epochs += 1
            if tc.patience and bad_epochs >= tc.patience:
                stopped_early = True
                break
    wps = timed_windows / timed_s if timed_windows and timed_s > 0 else float("nan")
    return TrainResult(
        params=best_params,
        config=config,
        train_config=tc,
        history=history,
        initial_val_loss=initial_val,
        best_val_loss=best_val,
        best_epoch=best_epoch,
        steps=step,
        wall_s=time.perf_counter() - t0,
        windows_per_s=wps,
        num_train_windows=int(M),
        num_val_windows=int(val_idx.shape[0]),
        stopped_early=stopped_early,
    )


def finetune_specialist(
    params: dict,
    config: ForecasterConfig,
    market: MarketData,
    bounds: SplitBounds,
    symbol: str,
    train_config: TrainConfig | None = None,
    *,
    log_fn: LogFn | None = None,
) -> SpecialistResult:
    """Fine-tune a copy of the generic ``params`` on ``symbol`` alone; keep it only if it is better.

    train_config defaults to :func:`specialist_train_config` of the default TrainConfig (lower LR,
    fewer steps).  Both validation NLLs are measured on the same validation windows of ``symbol``.
    """
    tc = train_config or specialist_train_config(TrainConfig())
    tc = dataclasses.replace(tc, max_val_windows=None)
    result = train_forecaster(
        market,
        bounds,
        config,
        tc,
        params=params,
        symbols=[symbol],
        log_fn=log_fn,
        log_prefix=f"forecaster/{symbol}/",
    )
    generic_nll, special_nll = result.initial_val_loss, result.best_val_loss
    kept = bool(np.isfinite(special_nll) and special_nll < generic_nll)
    return SpecialistResult(
        symbol=symbol,
        params=result.params if kept else params,
        kept=kept,
        generic_val_nll=float(generic_nll),
        specialist_val_nll=float(special_nll),
        train=result,
    )
