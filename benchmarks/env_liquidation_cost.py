"""What the bankruptcy liquidation costs on the env hot path (env-steps/s, with and without it).

    python benchmarks/env_liquidation_cost.py                 # 4096 envs x 2 assets, ~1 minute
    python benchmarks/env_liquidation_cost.py --num-envs 1k,4k --num-assets 2,8

Variants, timed round-robin in one process (benchmarks/common.py) in the jaxport.bench harness:

* ``library``         ``PortfolioEnv`` as shipped (bankruptcy liquidation included);
* ``no_liquidation``  a benchmark-only subclass whose ``step_env`` is the transition WITHOUT the
                      liquidation (no exit cost, no write-off, no forced close of open trades:
                      the form before the liquidation landed). It is NOT correct at a bankruptcy
                      and exists only here, to price the liquidation;
* ``cartpole``        gymnax CartPole-v1 in the same harness (the yardstick).

Each is compiled with XLA defaults and with jaxport's tuned CPU options
(:func:`jaxport.xla_options.compiler_options`), per compile. Writes JSON under benchmarks/results/.
"""

from __future__ import annotations

import argparse
import os
import sys

import jax
import jax.numpy as jnp

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import (  # noqa: E402
    int_list,
    interleaved_best,
    machine_info,
    steps_for,
    synthetic_arrays,
    write_results,
)
from jaxport import bench, xla_options  # noqa: E402
from jaxport.env import EnvParams, EnvState, PortfolioEnv  # noqa: E402
from jaxport.env.portfolio_env import _sum_assets  # noqa: E402


class NoLiquidationEnv(PortfolioEnv):
    """Benchmark-only: the step without the bankruptcy liquidation (wrong at a bankruptcy),
    with the library's asset sums (:func:`_sum_assets`), so only the liquidation differs."""

    def step_env(self, key, state, action, params):
        del key
        E = state.equity
        w_old = state.weights
        w_new, abs_new, gross = self._capped(action, params)
        r = self.asset_returns(state.t, params)
        cost_rate = params.fee_rate + params.slippage_rate
        turnover = jnp.abs(w_new - w_old)
        cost = E * cost_rate * turnover
        financing = (
            E
            * jnp.maximum(0.0, gross - 1.0)
            * params.annual_financing_rate
            / params.periods_per_year
        )
        financing_i = financing * abs_new / jnp.maximum(gross, 1e-12)
        borrow = E * jnp.maximum(0.0, -w_new) * params.short_borrow_rate / params.periods_per_year
        pnl = E * w_new * r
        step_net = pnl - cost - financing_i - borrow
        totals = _sum_assets(jnp.stack([step_net, pnl, cost, borrow, turnover]))
        sum_net, sum_pnl, sum_cost, sum_borrow, sum_turnover = (totals[i] for i in range(5))
        floor = self.bankruptcy_floor(params)
        new_equity = jnp.maximum(E + sum_net, floor)
        terminated = E + sum_net <= floor
        drifted = w_new * (1.0 + r) * E / new_equity
        w_next = jnp.where(terminated, jnp.zeros_like(drifted), drifted)
        s_old = jnp.sign(w_old)
        closing = (s_old != 0) & (jnp.sign(w_new) != s_old)
        closed_pnl = jnp.where(closing, state.open_trade_pnl - E * cost_rate * jnp.abs(w_old), 0.0)
        reopened = -E * cost_rate * abs_new + pnl - financing_i - borrow
        open_pnl = jnp.where(closing, reopened, state.open_trade_pnl + step_net)
        counts = _sum_assets(jnp.stack([closing, closing & (closed_pnl > 0)]).astype(jnp.int32))
        reward = jnp.log(new_equity / E)
        new_state = EnvState(
            t=state.t + 1,
            time=state.time + 1,
            equity=new_equity,
            weights=w_next,
            open_trade_pnl=open_pnl,
            gross_pnl=state.gross_pnl + sum_pnl,
            fees=state.fees + sum_cost,
            financing=state.financing + financing + sum_borrow,
            num_trades=state.num_trades + counts[0],
            winning_trades=state.winning_trades + counts[1],
            last_reward=reward,
        )
        info = {
            "equity": new_equity,
            "leverage": gross,
            "turnover": sum_turnover,
            "fees": sum_cost,
            "financing": financing + sum_borrow,
            "gross_pnl": sum_pnl,
            "portfolio_return": new_equity / E - 1.0,
            "closed_trade_pnl": closed_pnl,
            "num_closed": counts[0],
        }
        return self.get_obs(new_state, params), new_state, reward, terminated, info


def compiled_runner(env, params, sample_action, num_envs, num_steps, options):
    """A timed call of the jaxport.bench harness compiled with exactly ``options`` (``{}``: XLA
    defaults; set on the jit, which a later ``compile(options)`` cannot override)."""
    run, (obs, state) = bench.make_scan_runner(
        env, params, sample_action, num_envs, num_steps, compiler_options=options
    )
    compiled = run.lower(jax.random.key(0), obs, state).compile()
    jax.block_until_ready(compiled(jax.random.key(0), obs, state))
    return lambda i: jax.block_until_ready(compiled(jax.random.key(i + 1), obs, state))


def measure(num_envs, num_assets, repeats, tuned):
    prices, features = synthetic_arrays(num_assets)
    params = EnvParams.from_arrays(prices, features)
    steps = steps_for(num_envs)

    def portfolio_action(key, n):
        return jax.random.uniform(key, (n, num_assets), minval=-2.0, maxval=2.0)

    import gymnax

    cp_env, cp_params = gymnax.make("CartPole-v1")

    def cartpole_action(key, n):
        return jax.random.randint(key, (n,), 0, cp_env.num_actions)

    variants = {"default": {}, "tuned": tuned} if tuned else {"default": {}}
    fns = {}
    for tag, opts in variants.items():
        for name, env_cls in (("library", PortfolioEnv), ("no_liquidation", NoLiquidationEnv)):
            env = env_cls(num_assets=num_assets, num_features=features.shape[2])
            fns[f"{name}_{tag}"] = compiled_runner(
                env, params, portfolio_action, num_envs, steps, opts
            )
        fns[f"cartpole_{tag}"] = compiled_runner(
            cp_env, cp_params, cartpole_action, num_envs, steps, opts
        )
    timing = interleaved_best(fns, repeats)
    row = {"num_envs": num_envs, "num_assets": num_assets, "num_steps": steps}
    for name, t in timing.items():
        row[f"{name}_steps_per_s"] = num_envs * steps / t["best_s"]
    for tag in variants:
        lib, free = row[f"library_{tag}_steps_per_s"], row[f"no_liquidation_{tag}_steps_per_s"]
        row[f"liquidation_cost_{tag}"] = 1.0 - lib / free  # fraction of throughput lost
        row[f"library_vs_cartpole_{tag}"] = lib / row[f"cartpole_{tag}_steps_per_s"]
    return row


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--num-envs", default="4k", help="comma list; k = 1024")
    p.add_argument("--num-assets", default="2", help="comma list")
    p.add_argument("--repeats", type=int, default=7, help="timed calls per variant (best kept)")
    p.add_argument("--out", default=None, help="JSON path (default benchmarks/results/...)")
    args = p.parse_args(argv)
    tuned = xla_options.compiler_options(jax.default_backend(), ignore_env=True)
    load_before = os.getloadavg()
    rows = []
    for n_assets in int_list(args.num_assets):
        for n_envs in int_list(args.num_envs):
            row = measure(n_envs, n_assets, args.repeats, tuned)
            rows.append(row)
            print(
                " | ".join(
                    f"{k} {v / 1e6:.2f} M/s" if k.endswith("_steps_per_s") else f"{k} {v:.3g}"
                    for k, v in row.items()
                ),
                flush=True,
            )
    payload = {
        "benchmark": "env_liquidation_cost",
        "machine": machine_info(),
        "load_avg_before": load_before,
        "tuned_options": tuned,
        "args": vars(args),
        "rows": rows,
    }
    print(f"wrote {write_results('env_liquidation_cost', payload, args.out)}")


if __name__ == "__main__":
    main()
