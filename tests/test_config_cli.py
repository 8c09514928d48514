"""#20 item 2: the configuration tree writes ``jaxport train``'s flags.

* Every generated flag, in every scope/algorithm, either changes what that scope/algorithm uses
  (the trainer configs it builds, the env costs, the rest of the resolved configuration) or is
  refused with one line naming it (exit 2).
* ``--help`` shows each flag's real default (the resolved ``quick`` configuration).
* ``--print-config`` prints TOML that ``--config`` reads back unchanged.
* ``None`` RL settings keep every trainer's previous defaults (no behaviour change).
"""

from __future__ import annotations

import dataclasses
import functools
import re
import sys

import pytest

from jaxport.cli.common import RunOptions
from jaxport.cli.train import DEFAULT_MARK, _option_specs, refuse_inactive, resolve_flags
from jaxport.pipeline.basket_stage import env_kwargs
from jaxport.pipeline.config import PipelineConfig, RLConfig, build_config, chooses_tilt_scale
from jaxport.pipeline.config_schema import format_default, get_dotted, setting_specs
from jaxport.pipeline.trainer_configs import (
    gradient_config,
    ppo_config,
    universe_config,
    universe_ppo_config,
)

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

CONFIG_SPECS = setting_specs(PipelineConfig)
SCOPES = {
    "universe-gradient": ["--rl-scope", "universe", "--rl-algo", "gradient"],
    "universe-ppo": ["--rl-scope", "universe", "--rl-algo", "ppo"],
    "universe-volatility-timing": ["--rl-scope", "universe", "--anchor", "volatility_timing"],
    "universe-tilt-choice": ["--rl-scope", "universe", "--tilt-scales", "0,0.5,1"],
    "pair-gradient": ["--rl-scope", "pair", "--rl-algo", "gradient"],
    "pair-ppo": ["--rl-scope", "pair", "--rl-algo", "ppo"],
    "pair-transformer": [
        "--rl-scope",
        "pair",
        "--rl-algo",
        "gradient",
        "--rl-policy",
        "transformer",
    ],
}
CHOICES = {
    "rl.scope": ("universe", "pair"),
    "rl.algo": ("gradient", "ppo", "both"),
    "rl.policy": ("mlp", "transformer"),
    "data.features": ("toto", "stat", "toto+stat"),
    "data.forecast_moments": ("mean+std", "std"),
    "rl.objective": ("sharpe", "mean-variance", "log-growth"),
    "rl.gate_rule": ("every_baseline", "fallback"),
    "rl.gate_fallback": ("equal_weight", "vol_managed_equal_weight"),
    "rl.anchor": (
        "vol_managed_equal_weight",
        "equal_weight",
        "inverse_volatility",
        "volatility_timing",
        "none",
    ),
}
#: Values that keep the configuration valid where ``default + 1`` would not.
SPECIAL = {
    "base.context": "128",
    "base.patch": "16",
    "base.num_heads": "4",
    "base.d_model": "64",
    "rl.hidden_size": "48",
    "rl.max_gross": "0.8",
    "rl.gate_fraction": "0.3",
}


def _flag_args(spec, current) -> list[str]:
    """Arguments giving ``spec`` a valid value different from ``current``."""
    if spec.type is bool:
        return [spec.flag]
    if spec.dotted in CHOICES:
        return [spec.flag, next(c for c in CHOICES[spec.dotted] if c != current)]
    if spec.dotted in SPECIAL:
        return [spec.flag, SPECIAL[spec.dotted]]
    if spec.parse in ("symbols", "pairs"):
        return [spec.flag, "AAA,BBB"]
    if spec.parse == "names":
        return [spec.flag, "close"]
    if spec.parse == "floats":
        return [spec.flag, "0.6,0.2,0.2"]
    if spec.type is int:
        return [spec.flag, str(3 if current is None else max(2 * current, 1))]
    if spec.type is float:
        return [spec.flag, str(0.01 if current is None else current * 0.5 + 0.1)]
    return [spec.flag, "somewhere"]


def used_by_scope(config: PipelineConfig) -> dict:
    """What the chosen scope and algorithm use: every non-RL setting, the env costs, what
    ``PairData.build`` reads (observation window, training episode length), the devices and the
    trainer configs of that scope/algorithm."""
    rl = config.rl
    used = {k: v for k, v in config.to_dict().items() if k != "rl"}
    used["env"] = env_kwargs(rl)
    used["rl"] = {
        "scope": rl.scope,
        "algo": rl.algo,
        "window": rl.window,
        "episode_length": rl.episode_length,
        "devices": rl.devices,
        "gate_fraction": rl.gate_fraction,  # PairData.build: the gate's held-out rows
        "gate_rule": rl.gate_rule,  # gate_and_report
        "gate_fallback": rl.gate_fallback,
    }
    if rl.scope == "universe":  # universe_stage.train_universe_stage: the tilt scale's choice
        used["rl"]["tilt_scales"] = list(rl.tilt_scales)
        if chooses_tilt_scale(rl):  # PairData.build: the tilt rows
            used["rl"]["tilt_fraction"] = rl.tilt_fraction
    algos = ["gradient", "ppo"] if rl.algo == "both" else [rl.algo]
    for algo in algos:
        if rl.scope == "universe":
            make = universe_config if algo == "gradient" else universe_ppo_config
            used[algo] = make(rl, 3, rl.episode_length).to_dict()
        elif algo == "gradient":
            used[algo] = dataclasses.asdict(gradient_config(rl, rl.episode_length))
        else:
            used[algo] = dataclasses.asdict(ppo_config(rl, 2))
    return used


def _print_config(cli_runner, args: list[str]):
    from jaxport.cli import app

    return cli_runner.invoke(app, ["train", "--print-config", *args])


@functools.lru_cache(maxsize=None)
def _train_command():
    import typer

    from jaxport.cli import app

    return typer.main.get_command(app).commands["train"]


def _resolve(args: list[str], capsys) -> tuple[int, str, PipelineConfig | None]:
    """``(exit code, error output, resolved config)`` of ``jaxport train ARGS`` up to the point
    where it would run (the parsing of the real command, without rebuilding it per call)."""
    import typer

    ctx = _train_command().make_context("train", list(args))
    capsys.readouterr()
    try:
        _, config, given = resolve_flags(ctx.params)
        refuse_inactive(config, given)
    except typer.Exit as exc:
        return exc.exit_code, capsys.readouterr().err, None
    return 0, "", config


@pytest.mark.parametrize("scope", list(SCOPES))
@pytest.mark.parametrize("spec", CONFIG_SPECS, ids=lambda s: s.flag)
def test_every_flag_acts_or_is_refused(spec, scope, capsys):
    code, _, before = _resolve(SCOPES[scope], capsys)
    assert code == 0
    code, err, after = _resolve(
        SCOPES[scope] + _flag_args(spec, get_dotted(before, spec.dotted)), capsys
    )
    if code == 2:  # refused: one line that names a given flag and says why
        lines = [line for line in err.splitlines() if line.strip()]
        assert len(lines) == 1 and lines[0].startswith("error: --"), err
        named = lines[0].split()[1].rstrip(":")
        assert named == spec.flag or named in SCOPES[scope], err
        assert "acts only" in lines[0], err
        return
    assert code == 0, err
    assert used_by_scope(after) != used_by_scope(before), f"{spec.flag} had no effect in {scope}"


def test_every_flag_acts_in_some_scope(capsys):
    """No flag is refused everywhere (a flag that never acts should not exist)."""
    for spec in CONFIG_SPECS:
        codes = set()
        for args in SCOPES.values():
            before = build_config("quick", None, None)
            codes.add(_resolve(args + _flag_args(spec, get_dotted(before, spec.dotted)), capsys)[0])
        assert 0 in codes, spec.flag


@pytest.mark.parametrize(
    "args, flag",
    [
        (["--rl-scope", "pair", "--turnover-penalty", "0.01"], "--turnover-penalty"),
        (["--rl-scope", "pair", "--rl-seeds", "2"], "--rl-seeds"),
        (["--rl-algo", "ppo", "--rl-weight-decay", "0.1"], "--rl-weight-decay"),
        (["--rl-num-heads", "8"], "--rl-num-heads"),
        (["--rl-policy", "transformer"], "--rl-policy"),
    ],
)
def test_flags_that_do_not_act_are_refused(args, flag, cli_runner):
    result = _print_config(cli_runner, args)
    assert result.exit_code == 2
    assert result.output.strip().startswith(f"error: {flag}:") and "\n" not in result.output.strip()


def test_help_shows_the_resolved_defaults(cli_runner):
    import typer

    from jaxport.cli import app

    resolved = build_config("quick", None, None)
    run = RunOptions()
    command = typer.main.get_command(app).commands["train"]
    helps = {p.opts[0]: p.help for p in command.params if p.opts}
    for spec in _option_specs():
        root = run if spec.dotted in {f.name for f in dataclasses.fields(RunOptions)} else resolved
        expected = f"{DEFAULT_MARK}{format_default(get_dotted(root, spec.dotted))}]"
        assert helps[spec.flag].endswith(expected), (spec.flag, helps[spec.flag])
    # the three defaults the issue found wrong, as a user reads them
    cli_runner_wide = cli_runner.invoke(app, ["train", "--help"], env={"COLUMNS": "250"})
    text = " ".join(cli_runner_wide.output.split())
    for flag, value in (
        ("--turnover-penalty", "0.002"),
        ("--rebalance-rate", "1.0"),
        ("--feature-noise", "0.3"),
    ):
        tail = text[text.index(flag) :]
        assert f"[default: {value}]" in tail[: tail.index("--", 2)], flag


@pytest.mark.parametrize(
    "profile, args",
    [
        ("quick", []),
        ("full", ["--rl-scope", "pair", "--pair", "AAPL,AMZN", "--pair", "MSFT,NVDA,GOOGL"]),
        ("quick", ["--rl-learning-rate", "0.02", "--base-stocks", "aapl,msft", "--seed", "7"]),
        (
            "quick",
            ["--toto-targets", "close,high", "--data-split", "0.6,0.2,0.2", "--devices", "2"],
        ),
    ],
)
def test_print_config_round_trips_through_config(profile, args, cli_runner, tmp_path):
    first = _print_config(cli_runner, ["--profile", profile, *args])
    assert first.exit_code == 0, first.output
    path = tmp_path / "run.toml"
    path.write_text(first.output, encoding="utf-8")
    assert tomllib.loads(first.output)["profile"] == profile
    second = _print_config(cli_runner, ["--profile", profile, "--config", str(path)])
    assert second.exit_code == 0, second.output
    assert second.output == first.output
    assert build_config(profile, path) == build_config(profile, path, None)


def test_config_objectives_are_the_universe_trainers():
    """The jax-free config's objective list is the universe trainer's own."""
    from jaxport.pipeline.config import RL_OBJECTIVES
    from jaxport.rl.universe import OBJECTIVES

    assert RL_OBJECTIVES == OBJECTIVES


def test_rl_settings_act_on_the_universe_trainers():
    rl = RLConfig(learning_rate=0.02, hidden_size=48, num_layers=3, num_steps=16)
    for make in (universe_config, universe_ppo_config):
        cfg = make(rl, 3, 64)
        assert cfg.lr == 0.02 and cfg.hidden_sizes == (48, 48, 48) and cfg.head_size == 48
    assert universe_config(rl, 3, 64).bptt_length == 16
    assert universe_ppo_config(rl, 3, 64).num_steps == 16
    both = RLConfig(learning_rate=0.02, gradient_learning_rate=0.05)
    assert universe_config(both, 3, 64).lr == 0.05 and universe_ppo_config(both, 3, 64).lr == 0.02
    assert gradient_config(both, 64).lr == 0.05 and ppo_config(both, 2).lr == 0.02


def test_unset_rl_settings_keep_every_trainers_defaults():
    """No behaviour change: ``None`` gives what the trainers used before the settings acted."""
    from jaxport.rl import GradientConfig, PPOConfig
    from jaxport.rl.universe import UniverseConfig
    from jaxport.rl.universe_ppo import UniversePPOConfig

    rl = RLConfig()
    uni, uppo = universe_config(rl, 3, 128), universe_ppo_config(rl, 3, 128)
    assert (uni.lr, uni.hidden_sizes, uni.head_size) == (
        UniverseConfig.lr,
        UniverseConfig.hidden_sizes,
        UniverseConfig.head_size,
    )
    assert uni.bptt_length == 32 and universe_config(rl, 3, 20).bptt_length == 20
    assert (uppo.lr, uppo.num_steps, uppo.weight_decay) == (UniversePPOConfig.lr, 32, 0.0)
    grad, ppo = gradient_config(rl, 128), ppo_config(rl, 2)
    assert (grad.lr, grad.hidden_sizes, grad.hidden_size, grad.bptt_length) == (
        GradientConfig.lr,
        (64, 64),
        64,
        64,
    )
    assert (ppo.lr, ppo.hidden_sizes, ppo.num_steps) == (PPOConfig.lr, (64, 64), 64)


def test_readme_and_architecture_name_every_flag():
    """The README's flag list and docs/architecture.md agree with ``--help``: every generated flag
    is in the README, and the architecture page names the module that declares them."""
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    readme = (root / "README.md").read_text(encoding="utf-8")
    missing = [
        s.flag
        for s in _option_specs()
        if not re.search(rf"(?<![\w-]){re.escape(s.flag)}(?![\w-])", readme)
    ]
    assert missing == []
    arch = (root / "docs" / "architecture.md").read_text(encoding="utf-8")
    for name in ("config_schema.py", "trainer_configs.py", "universe_stage.py", "registry.py"):
        assert name in arch, name
