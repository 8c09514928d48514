"""Run an exported jaxport policy for one episode in the PyTorch portfolio env (no JAX code).

    jaxport train --output-dir runs/models             # forecasters + a policy per pair (JAX)
    jaxport export runs/models --to exported/          # -> exported/portfolio_<A>_<B>.{pt,json,env.npz}
    python examples/torch_policy_episode.py exported/portfolio_AAPL_AMZN.pt --data trainingdata

The policy is a plain ``torch.nn.Module`` (``torch_compat.models``); the env is a Gymnasium env whose
observations, actions and info are ``torch.Tensor``. Observations: the exported ``.env.npz`` holds the
features the policy was trained with (the pair's test episode); without it the env uses the
statistical features of ``jaxport.features`` (``--features stat``) or none (``--features none``).

Every exported policy -- learned (``portfolio_<A>_<B>_learned_<algo>`` when the gate did not ship
it) or a standard allocator (``baseline:<name>``) -- is replayed by the same loop:
``policy.act(obs, info)`` (see ``torch_compat.models.ReplayPolicy``). ``policy.reset(prices=...)``
binds the env's close prices, which a standard allocator reads; learned networks ignore it.
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


def run_episode(policy, env, max_steps: int | None = None) -> tuple[float, int, float]:
    """One episode of ``policy`` in ``env``: ``(final equity / initial, steps, sum of rewards)``.
    The same loop for every exported policy (``act(obs, info)``)."""
    obs, info = env.reset(seed=0)
    policy.reset(prices=env.params.prices)  # close prices [T, N]: what a standard allocator reads
    steps, total_reward = 0, 0.0
    with torch.no_grad():
        while True:
            obs, reward, terminated, truncated, info = env.step(policy.act(obs, info))
            steps += 1
            total_reward += float(reward)
            if terminated or truncated or steps == max_steps:
                break
    return float(info["equity"]), steps, total_reward


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
    allocator = policy.kind == "allocator_policy"  # a standard allocator: acts on the prices
    want = policy.config["num_assets"] if allocator else policy.config.get("obs_dim")
    have = env.action_space.shape[0] if allocator else env.observation_space.shape[0]
    if want is not None and have != want:
        raise SystemExit(
            f"{'number of assets' if allocator else 'observation size'} {have} != "
            f"policy's {want}: use the exported .env.npz (jaxport export) or the "
            "features/symbols the policy was trained with"
        )
    equity, steps, total_reward = run_episode(policy, env, max_steps=args.max_steps)
    label = policy.arch.get("label", "")
    print(
        f"{args.policy.name}{f' ({label})' if label else ''} on {', '.join(env.symbols)}: "
        f"{steps} steps, "
        f"final equity {equity:.4f} x initial ({100 * (equity - 1):+.2f} %), "
        f"sum of rewards {total_reward:+.4f}"
    )
    return equity


if __name__ == "__main__":
    main()
