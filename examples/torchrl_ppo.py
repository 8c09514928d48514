"""PPO with TorchRL on the jaxport portfolio env (``torch_compat.TorchRLPortfolioEnv``).

TorchRL's own pieces do the training: ``Collector`` gathers ``--frames-per-batch`` frames from
``--num-envs`` JAX envs stepped as one batch, ``GAE`` computes advantages and ``ClipPPOLoss``
the loss of a ``TanhNormal`` policy bounded by the leverage cap. Small defaults run in about a
minute on a laptop CPU::

    python examples/torchrl_ppo.py --frames 8192
    python examples/torchrl_ppo.py --symbols AAPL MSFT NVDA --num-envs 64 --frames 200000

Needs ``pip install "jaxport[torch]"`` (torch, torchrl, tensordict). Rewards are per-step log
returns of the portfolio (the env's default), so the printed "reward" is a mean daily log return.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

REPO_DATA = Path(__file__).resolve().parent.parent / "trainingdata"


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    p.add_argument("--data-dir", type=Path, default=REPO_DATA, help="folder of SYMBOL.csv files")
    p.add_argument("--symbols", nargs="+", default=["AAPL", "MSFT"], help="assets of the basket")
    p.add_argument("--num-envs", type=int, default=16, help="envs stepped as one JAX batch")
    p.add_argument("--frames", type=int, default=8192, help="total env steps (all envs)")
    p.add_argument("--frames-per-batch", type=int, default=512, help="env steps per PPO update")
    p.add_argument("--epochs", type=int, default=4, help="PPO epochs per batch")
    p.add_argument("--minibatch", type=int, default=128, help="minibatch size (frames)")
    p.add_argument("--lr", type=float, default=3e-4, help="Adam learning rate")
    p.add_argument("--gamma", type=float, default=0.99)
    p.add_argument("--lmbda", type=float, default=0.95, help="GAE lambda")
    p.add_argument("--clip", type=float, default=0.2, help="PPO clip epsilon")
    p.add_argument("--entropy-coeff", type=float, default=1e-3)
    p.add_argument("--hidden", type=int, default=64, help="width of the two hidden layers")
    p.add_argument(
        "--episode-length", type=int, default=64, help="steps (trading days) per episode"
    )
    p.add_argument("--leverage-cap", type=float, default=1.0, help="max gross exposure (x equity)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cpu", help="Torch device of the policy and the env data")
    p.add_argument(
        "--torch-threads",
        type=int,
        default=None,
        help="torch.set_num_threads (on a small CPU shared with JAX, 1 is often fastest)",
    )
    args = p.parse_args(argv)
    for name in (
        "num_envs",
        "frames",
        "frames_per_batch",
        "epochs",
        "minibatch",
        "hidden",
        "episode_length",
    ):
        if getattr(args, name) < 1:
            p.error(f"--{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}")
    if args.frames_per_batch % args.num_envs:
        p.error(
            f"--frames-per-batch {args.frames_per_batch} must be a multiple of "
            f"--num-envs {args.num_envs}"
        )
    if not args.data_dir.is_dir():
        p.error(f"--data-dir {args.data_dir}: folder not found")
    return args


def build(env, hidden: int, device):
    """``(policy, value)``: a TanhNormal actor in the action spec's bounds and a critic."""
    import torch
    from tensordict.nn import NormalParamExtractor, TensorDictModule
    from torch import nn
    from torchrl.modules import MLP, ProbabilisticActor, TanhNormal, ValueOperator

    obs_dim = env.observation_spec["observation"].shape[-1]
    num_assets = env.action_spec.shape[-1]
    actor_net = nn.Sequential(
        MLP(
            in_features=obs_dim,
            out_features=2 * num_assets,
            num_cells=[hidden, hidden],
            activation_class=nn.Tanh,
            device=device,
        ),
        NormalParamExtractor(),
    )
    policy = ProbabilisticActor(
        TensorDictModule(actor_net, in_keys=["observation"], out_keys=["loc", "scale"]),
        spec=env.action_spec_unbatched,
        in_keys=["loc", "scale"],
        distribution_class=TanhNormal,
        distribution_kwargs={
            "low": env.action_spec_unbatched.space.low,
            "high": env.action_spec_unbatched.space.high,
        },
        return_log_prob=True,
    )
    value = ValueOperator(
        MLP(
            in_features=obs_dim,
            out_features=1,
            num_cells=[hidden, hidden],
            activation_class=nn.Tanh,
            device=device,
        ),
        in_keys=["observation"],
    )
    with torch.no_grad():  # materialise shapes once
        td = env.reset()
        policy(td)
        value(td)
    return policy, value


def train(args) -> list[dict]:
    import torch
    from torchrl.collectors import Collector
    from torchrl.data import LazyTensorStorage, ReplayBuffer, SamplerWithoutReplacement
    from torchrl.objectives import ClipPPOLoss
    from torchrl.objectives.value import GAE

    from torch_compat import TorchRLPortfolioEnv

    torch.manual_seed(args.seed)
    if args.torch_threads:
        torch.set_num_threads(args.torch_threads)
    device = torch.device(args.device)
    env = TorchRLPortfolioEnv.from_csv_dir(
        args.data_dir,
        symbols=args.symbols,
        num_envs=args.num_envs,
        device=device,
        episode_length=args.episode_length,
        leverage_cap=args.leverage_cap,
    )
    env.set_seed(args.seed)
    policy, value = build(env, args.hidden, device)
    collector = Collector(
        env,
        policy,
        frames_per_batch=args.frames_per_batch,
        total_frames=args.frames,
        device=device,
        auto_register_policy_transforms=False,
    )
    advantage = GAE(gamma=args.gamma, lmbda=args.lmbda, value_network=value, average_gae=True)
    loss_fn = ClipPPOLoss(
        policy,
        value,
        clip_epsilon=args.clip,
        entropy_bonus=args.entropy_coeff > 0,
        entropy_coeff=args.entropy_coeff,
        normalize_advantage=False,
    )
    optim = torch.optim.Adam(loss_fn.parameters(), lr=args.lr)
    buffer = ReplayBuffer(
        storage=LazyTensorStorage(args.frames_per_batch, device=device),
        sampler=SamplerWithoutReplacement(),
        batch_size=args.minibatch,
    )
    history = []
    start = time.perf_counter()
    frames = 0
    for i, batch in enumerate(collector):
        frames += batch.numel()
        with torch.no_grad():
            advantage(batch)
        buffer.extend(batch.reshape(-1))
        for _ in range(args.epochs):
            for _ in range(max(1, args.frames_per_batch // args.minibatch)):
                sub = buffer.sample()
                losses = loss_fn(sub)
                loss = (
                    losses["loss_objective"]
                    + losses["loss_critic"]
                    + losses.get("loss_entropy", 0.0)
                )
                optim.zero_grad()
                loss.backward()
                torch.nn.utils.clip_grad_norm_(loss_fn.parameters(), 1.0)
                optim.step()
        collector.update_policy_weights_()
        row = {
            "iter": i,
            "frames": frames,
            "reward": float(batch["next", "reward"].mean()),
            "equity_end": float(batch["next", "equity"][batch["next", "done"]].mean())
            if bool(batch["next", "done"].any())
            else float("nan"),
            "loss_objective": float(losses["loss_objective"].detach()),
            "loss_critic": float(losses["loss_critic"].detach()),
            "steps_per_s": frames / (time.perf_counter() - start),
        }
        history.append(row)
        print(
            f"iter {i:3d}  frames {frames:7d}  reward {row['reward']:+.5f}  "
            f"equity@end {row['equity_end']:.4f}  loss_pi {row['loss_objective']:+.4f}  "
            f"loss_v {row['loss_critic']:.5f}  {row['steps_per_s']:.0f} steps/s",
            flush=True,
        )
    collector.shutdown()
    return history


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        train(args)
    except ImportError as err:
        print(
            f"torchrl_ppo: {err}; install the Torch extra: pip install 'jaxport[torch]'",
            file=sys.stderr,
        )
        return 2
    except ValueError as err:  # jaxport's user errors (bad symbols, data) are ValueErrors
        print(f"torchrl_ppo: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
