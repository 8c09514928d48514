"""Forecaster (Toto-style patch transformer, jaxport.forecast) throughput: windows/s.

    python benchmarks/forecaster_throughput.py      # profiles quick,full; batches 1,64,256,1024
    python benchmarks/forecaster_throughput.py --profiles large --batches 256

For each profile's ``ForecasterConfig`` and batch size, on random raw windows ``[B, context, 6]``:

* ``predict``  ``jit(predict_distribution)``: normalise + forward -> (loc, scale, dof)
               ``[B, K, H]``;
* ``train``    one AdamW step of the mean Student-T NLL (the training loss, dropout on as in
               training), jitted with donated buffers: forward + backward + update.

Timed after compilation, best of ``--repeats`` (block_until_ready). Prints a table and writes
JSON under benchmarks/results/. Parameter counts and peak RSS are recorded.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import optax  # noqa: E402

from common import best_of, format_rows, int_list, machine_info, peak_rss_mb, write_results  # noqa: E402
from jaxport.forecast import count_params, init_params, predict_distribution, profile  # noqa: E402
from jaxport.forecast.distribution import student_t_logpdf  # noqa: E402
from jaxport.forecast.model import predict_normalised  # noqa: E402
from jaxport.forecast.windows import normalise_window  # noqa: E402


def random_windows(key, batch: int, config):
    """Plausible raw channels: returns ~1 %/day, |close return|, log-volume ~ N(15, 1)."""
    k1, k2 = jax.random.split(key)
    rets = 0.01 * jax.random.normal(k1, (batch, config.context, 4))
    vol = 15.0 + jax.random.normal(k2, (batch, config.context, 1))
    return jnp.concatenate([rets, jnp.abs(rets[..., :1]), vol], axis=-1)


def measure(config, batch: int, repeats: int) -> dict:
    params = init_params(config, jax.random.PRNGKey(0))
    x = random_windows(jax.random.PRNGKey(1), batch, config)
    y = 0.02 * jax.random.normal(jax.random.PRNGKey(2), (batch, config.num_targets, config.horizon))

    predict = jax.jit(lambda p, x: predict_distribution(p, config, x))
    t0 = time.perf_counter()
    jax.block_until_ready(predict(params, x))
    compile_predict = time.perf_counter() - t0
    t_pred = best_of(lambda i: jax.block_until_ready(predict(params, x)), repeats)

    tx = optax.adamw(1e-4, weight_decay=0.01)

    def loss_fn(p, x, y, key):
        xn, s = normalise_window(x, config)
        loc, scale, dof = predict_normalised(
            p, config, xn, deterministic=config.dropout == 0.0, dropout_key=key
        )
        return -jnp.mean(student_t_logpdf(y / s[:, None, None], loc, scale, dof))

    @jax.jit
    def train_step(p, opt_state, x, y, key):
        loss, grads = jax.value_and_grad(loss_fn)(p, x, y, key)
        updates, opt_state = tx.update(grads, opt_state, p)
        return optax.apply_updates(p, updates), opt_state, loss

    state = {"p": params, "o": tx.init(params)}

    def one(i):
        state["p"], state["o"], loss = train_step(
            state["p"], state["o"], x, y, jax.random.PRNGKey(i + 10)
        )
        jax.block_until_ready(loss)

    t0 = time.perf_counter()
    one(-5)
    compile_train = time.perf_counter() - t0
    t_train = best_of(one, repeats)
    return {
        "batch": batch,
        "params": count_params(params),
        "predict_windows_per_s": batch / t_pred["best_s"],
        "predict_ms": 1e3 * t_pred["best_s"],
        "train_windows_per_s": batch / t_train["best_s"],
        "train_step_ms": 1e3 * t_train["best_s"],
        "compile_predict_s": compile_predict,
        "compile_train_s": compile_train,
        "peak_rss_mb": peak_rss_mb(),
    }


COLUMNS = [
    ("profile", "profile", "{}"),
    ("params", "params", "{:,d}"),
    ("batch", "batch", "{:d}"),
    ("predict_windows_per_s", "predict win/s", "{:,.0f}"),
    ("predict_ms", "predict ms", "{:.2f}"),
    ("train_windows_per_s", "train win/s", "{:,.0f}"),
    ("train_step_ms", "train step ms", "{:.1f}"),
    ("peak_rss_mb", "peak RSS MiB", "{:.0f}"),
]


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--profiles", default="quick,full", help="comma list of forecaster profiles")
    p.add_argument("--batches", default="1,64,256,1024", help="comma list of batch sizes (windows)")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--out", default=None)
    args = p.parse_args(argv)
    rows = []
    for name in [s.strip() for s in args.profiles.split(",") if s.strip()]:
        config, _ = profile(name)
        for b in int_list(args.batches):
            row = {"profile": name, "config": config.to_dict(), **measure(config, b, args.repeats)}
            rows.append(row)
            print(
                f"{name:8s} batch {b:5d}: predict {row['predict_windows_per_s']:10,.0f} windows/s, "
                f"train {row['train_windows_per_s']:9,.0f} windows/s",
                flush=True,
            )
    result = {
        "benchmark": "forecaster_throughput",
        "machine": machine_info(),
        "args": vars(args),
        "rows": rows,
    }
    print()
    print(format_rows(rows, COLUMNS))
    print(f"wrote {write_results('forecaster_throughput', result, args.out)}")


if __name__ == "__main__":
    main()
