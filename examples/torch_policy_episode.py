"""Run an exported jaxport policy for one episode in the PyTorch portfolio env (no JAX code).

    jaxport train --output-dir runs/models             # forecasters + a policy per pair (JAX)
    jaxport export runs/models --to exported/          # -> exported/portfolio_<A>_<B>.{pt,json,env.npz}
    python examples/torch_policy_episode.py exported/portfolio_AAPL_AMZN.pt --data trainingdata

The policy is a plain ``torch.nn.Module`` (``torch_compat.models``); the env is a Gymnasium env whose
observations, actions and info are ``torch.Tensor``. Observations: the exported ``.env.npz`` holds the
features the policy was trained with (the pair's test episode); without it the env uses the
statistical features of ``jaxport.features`` (``--features stat``) or none (``--features none``).

A run that shipped a standard allocator (``baseline:<name>``) exports an ``AllocatorPolicy``: no
weights, it computes its target from the trailing close prices, so the loop passes it the price
window of the env's data up to the current day and the episode step (rebalance schedule).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from torch_compat import TorchPortfolioEnv
from torch_compat.models import load_exported


def make_env(policy_path: Path, arch: dict, data_dir: Path, features: str) -> TorchPortfolioEnv:
    env_info = arch.get("env", {})
    symbols = env_info.get("symbols") or None
    options = dict(env_info.get("options", {}))
    npz = policy_path.with_suffix(".env.npz")
    if features == "auto":
        features = "export" if npz.is_file() else "stat"
    if (
        features == "export"
    ):  # the exact test episode the policy was evaluated on (arrays from trainingdata)
        with np.load(npz) as z:
            return TorchPortfolioEnv(
                z["prices"],
                z["features"],
                open_prices=z["open_prices"],
                symbols=[str(s) for s in z["symbols"]],
                eval_start=int(z["eval_start"]),
                start_min=int(z["start_min"]),
                episode_length=None,
                **options,
            )
    # no exported features: a fresh evaluation episode over the last 252 days of the data
    env = TorchPortfolioEnv.from_csv_dir(data_dir, symbols, features=features, **options)
    start = max(int(env.params.start_min), int(env.params.num_days) - 1 - 252)
    return TorchPortfolioEnv.from_csv_dir(
        data_dir, symbols, features=features, eval_start=start, episode_length=None, **options
    )


def main(argv: list[str] | None = None) -> float:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("policy", type=Path, help="exported policy .pt (with its .json beside it)")
    parser.add_argument(
        "--data",
        type=Path,
        default=Path("trainingdata"),
        help="directory of <SYMBOL>.csv files (used when there is no .env.npz)",
    )
    parser.add_argument("--features", default="auto", choices=["auto", "export", "stat", "none"])
    parser.add_argument(
        "--max-steps", type=int, default=None, help="stop the episode early (for a quick look)"
    )
    args = parser.parse_args(argv)

    policy = load_exported(args.policy)  # torch.nn.Module, eval mode, strict state_dict load
    env = make_env(args.policy, policy.arch, args.data, args.features)  # .arch: the exported JSON
    allocator = policy.kind == "allocator_policy"  # a shipped baseline: acts on the price history
    want = policy.config["num_assets"] if allocator else policy.config["obs_dim"]
    have = env.action_space.shape[0] if allocator else env.observation_space.shape[0]
    if have != want:
        raise SystemExit(
            f"{'number of assets' if allocator else 'observation size'} {have} != "
            f"policy's {want}: use the exported .env.npz (jaxport export) or the "
            "features/symbols the policy was trained with"
        )
    prices = torch.from_numpy(np.array(env.params.prices))  # close prices [T, N] of the env's data

    obs, info = env.reset(seed=0)
    steps, total_reward = 0, 0.0
    with torch.no_grad():
        while True:
            if allocator:  # target weights from the closes up to today, on its rebalance schedule
                action = policy.act(obs, policy.price_window(prices, int(info["t"])), steps)
            else:
                action = policy.act(obs)  # target exposure per asset, fraction of equity
            obs, reward, terminated, truncated, info = env.step(action)
            steps += 1
            total_reward += reward
            if terminated or truncated or steps == args.max_steps:
                break
    equity = float(info["equity"])
    print(
        f"symbols {', '.join(env.symbols)}: {steps} steps from day {int(info['t']) - steps}, "
        f"final equity {equity:.4f} x initial ({100 * (equity - 1):+.2f} %), "
        f"sum of rewards {total_reward:+.4f}"
    )
    return equity


if __name__ == "__main__":
    main()
