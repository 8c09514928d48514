"""Regenerate the benchmark tables of README.md and benchmarks/README.md from the JSON results.

    python benchmarks/make_tables.py            # rewrite every marked block in place
    python benchmarks/make_tables.py --check    # exit 1 and name the stale blocks (used by a test)

A block is the text between ``<!-- make_tables:NAME begin -->`` and ``<!-- make_tables:NAME end
-->``; everything outside the markers is left alone. Inputs (benchmarks/results/):
``env_throughput-latest.json``, ``ppo_throughput.json``, ``env_memory.json``,
``forecaster_eval.json`` and every ``gpu_suite-*.json`` that is not a smoke run. A missing input
renders as a line saying which script makes it, so the docs never quote a number no JSON holds.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from pathlib import Path
from typing import Callable

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
RESULTS = HERE / "results"
sys.path.insert(0, str(HERE))

ENV_JSON = "env_throughput-latest.json"
PPO_JSON = "ppo_throughput.json"
MEMORY_JSON = "env_memory.json"
FORECASTER_JSON = "forecaster_eval.json"
GPU_GLOB = "gpu_suite-*.json"
GPU_COMMAND = "bash benchmarks/gpu_suite.sh"
HEADLINE = (4096, 2)  # num_envs x num_assets of the CPU headline
YNN_HELPS = 1.10  # ynn-off counts as helping where it is >= this x faster (wall and CPU time)


# ------------------------------------------------------------------------------------ formatting
def rate(x: float | None) -> str:
    """``8_980_000`` -> ``"8.98 M"``, ``85_817`` -> ``"85.8 k"``."""
    if x is None:
        return "-"
    for div, unit in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if x >= div:
            v = x / div
            return f"{v:.3g} {unit}" if v < 100 else f"{v:,.0f} {unit}"
    return f"{x:.3g}"


def ratio(x: float | None) -> str:
    if x is None:
        return "-"
    return f"{x:,.0f}×" if x >= 100 else f"{x:.2f}×"


def nbytes(x: float) -> str:
    for div, unit in ((2**30, "GiB"), (2**20, "MiB"), (2**10, "KiB")):
        if x >= div:
            return f"{x / div:.3g} {unit}"
    return f"{x:.0f} B"


def envs(b: int) -> str:
    for div, suffix in ((1 << 20, "M"), (1024, "k")):
        if b >= div and b % div == 0:
            return f"{b // div}{suffix}"
    return f"{b:,}"


def _load(name: str, results: Path) -> dict | None:
    path = results / name
    return json.loads(path.read_text()) if path.exists() else None


def _missing(name: str, script: str) -> str:
    return f"_No results yet: `{name}` is written by `{script}`._"


def _machine(m: dict, torch: dict | None = None) -> str:
    flags = m.get("xla_flags") or "none"
    t = f", torch {torch['version']}" if torch else ""
    return (
        f"{m.get('cpu_count', '?')}-core {m.get('jax_backend', '?')}, JAX {m.get('jax', '?')}"
        f"{t}, XLA_FLAGS {flags}"
    )


def load_note(m: dict) -> str:
    """A plain warning when the machine was busy (1-minute load above its CPU count)."""
    load, cpus = m.get("load_avg_1_5_15"), m.get("cpu_count") or 1
    if not load or load[0] <= cpus:
        return ""
    return (
        f" The machine was shared and busy (load average {load[0]:.1f} on {cpus} cores at the end"
        " of the run): absolute rates are low and noisy; compare ratios (formed within one run,"
        " round-robin), and where wall and CPU-time ratios disagree, trust CPU time more."
    )


def provenance(result: dict | None) -> str:
    """When and on which commit a result was measured: ``machine.measured_at`` and
    ``machine.git_commit`` (written by ``jaxport.bench.machine_info``), else the ``recorded`` block
    backfilled from git history (the commit that wrote the file), else says it is unknown."""
    if not result:
        return "date and commit not recorded"
    m = result.get("machine") or {}
    if m.get("measured_at"):
        commit = (m.get("git_commit") or "unknown")[:7]
        return f"measured {m['measured_at'][:10]} at commit {commit}"
    rec = result.get("recorded") or {}
    if rec.get("commit"):
        return f"recorded {rec['date']} in commit {rec['commit'][:7]}"
    return "date and commit not recorded"


def _load_avg(m: dict) -> str:
    load = m.get("load_avg_1_5_15") or m.get("load_average")
    return f", load average {load[0]:.1f}" if load else ""


def _row(env: dict, num_envs: int, num_assets: int) -> dict | None:
    for r in env.get("rows", []):
        if r["num_envs"] == num_envs and r["num_assets"] == num_assets:
            return r
    return None


def _headline_label(env: dict) -> str:
    """How the headline ``jax`` column was compiled (old JSONs: flags set process-wide)."""
    rows = env.get("rows") or [{}]
    if "jax_xla" in rows[0]:
        if rows[0]["jax_xla"] == "default":
            return "XLA defaults"
        return "YNNPACK fusions off, per compile (jaxport's CPU default)"
    flags = env.get("machine", {}).get("xla_flags", "")
    return "YNNPACK fusions off (XLA_FLAGS)" if "ynn_fusion" in flags else "XLA defaults"


def _options_label(opts: dict) -> str:
    """``{}`` -> "XLA defaults"; jaxport's CPU option -> "YNNPACK fusions off"."""
    if not opts:
        return "XLA defaults"
    if "xla_cpu_experimental_ynn_fusion_type" in opts:
        return "YNNPACK fusions off"
    return ", ".join(f"{k}={v!r}" for k, v in opts.items())


# ------------------------------------------------------------------------------------ blocks
REFS = (  # key, label, target (JAX / reference)
    ("cartpole", "gymnax CartPole-v1 (same harness)", 0.5),
    ("torch_compile", "batched Torch, `torch.compile`", 1.0),
    ("torch_eager", "batched Torch, eager", 2.0),
    ("gym_loop", "Torch Gymnasium env, Python loop", 100.0),
)


def block_env_cpu(results: Path) -> str:
    env = _load(ENV_JSON, results)
    if env is None:
        return _missing(ENV_JSON, "python benchmarks/env_throughput.py")
    b, n = HEADLINE
    r = _row(env, b, n)
    if r is None:
        return f"_`{ENV_JSON}` has no {b} envs × {n} assets row._"
    lines = [
        f"At {b:,} envs × {n} assets (`results/{ENV_JSON}`; "
        f"{_machine(env['machine'], env.get('torch'))};"
        f" the jaxport column: {_headline_label(env)}):",
        "",
        "| implementation | env-steps/s | jaxport ratio | ratio by CPU time | target |",
        "|---|---|---|---|---|",
        f"| jaxport `PortfolioEnv` | {rate(r['jax_steps_per_s'])} | | | |",
    ]
    for key, label, need in REFS:
        if f"{key}_steps_per_s" in r:
            lines.append(
                f"| {label} | {rate(r[f'{key}_steps_per_s'])} | {ratio(r[f'vs_{key}'])} "
                f"| {ratio(r.get(f'cpu_vs_{key}'))} | ≥ {need:g}× |"
            )
    if "cartpole_ynn_off_steps_per_s" in r:
        lines.append(
            f"| gymnax CartPole-v1, compiled with jaxport's options | "
            f"{rate(r['cartpole_ynn_off_steps_per_s'])} | "
            f"{ratio(r['ynn_off_vs_cartpole_ynn_off'])} "
            f"| {ratio(r['cartpole_ynn_off_cpu_ns'] / r['jax_cpu_ns'])} | |"
        )
    note = load_note(env["machine"])
    return "\n".join(lines + (["", note.strip()] if note else []))


def block_env_grid(results: Path) -> str:
    env = _load(ENV_JSON, results)
    if env is None:
        return _missing(ENV_JSON, "python benchmarks/env_throughput.py")
    lines = [
        "| envs | assets | jaxport | CartPole | ratio | `torch.compile` | ratio | Torch eager "
        "| ratio |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in env["rows"]:
        cells = [envs(r["num_envs"]), str(r["num_assets"]), rate(r["jax_steps_per_s"])]
        for key in ("cartpole", "torch_compile", "torch_eager"):
            cells += [rate(r.get(f"{key}_steps_per_s")), ratio(r.get(f"vs_{key}"))]
        lines.append("| " + " | ".join(cells) + " |")
    lin = [x for x in env.get("linearity", []) if x["to_assets"] > x["from_assets"]]
    if lin:
        growth = [x["cost_growth"] for x in lin]
        a, z = lin[0]["from_assets"], lin[0]["to_assets"]
        lines += [
            "",
            f"Cost per env-step (CPU time) from {a} to {z} assets grows "
            f"{min(growth):.2f}× to {max(growth):.2f}× over these batch sizes "
            f"(linear would be {z / a:.0f}×).",
        ]
    return "\n".join(lines)


def block_ynn(results: Path) -> str:
    env = _load(ENV_JSON, results)
    if env is None:
        return _missing(ENV_JSON, "python benchmarks/env_throughput.py")
    rows = [r for r in env["rows"] if "ynn_off_speedup" in r]
    if not rows:
        return (
            "_This run did not time the YNNPACK-off variant (`env_throughput.py --xla-flags "
            "both` does)._"
        )
    lines = [
        "| envs | assets | XLA defaults | YNNPACK fusions off | speed-up (wall) "
        "| speed-up (CPU time) |",
        "|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        default = r.get("jax_xla_default_steps_per_s", r["jax_steps_per_s"])  # new JSONs / old
        lines.append(
            f"| {envs(r['num_envs'])} | {r['num_assets']} | {rate(default)} "
            f"| {rate(r['jax_ynn_off_steps_per_s'])} | {ratio(r['ynn_off_speedup'])} "
            f"| {ratio(r.get('ynn_off_cpu_speedup'))} |"
        )
    lines += ["", ynn_verdict(rows) + load_note(env["machine"])]
    return "\n".join(lines)


def ynn_verdict(rows: list[dict]) -> str:
    """One sentence: where turning YNNPACK fusions off helped (>= ``YNN_HELPS`` by wall AND CPU
    time), where it hurt (<= 1 / ``YNN_HELPS`` by both), and the rest within noise."""

    def both(r, lo=None, hi=None):
        vals = [r["ynn_off_speedup"], r.get("ynn_off_cpu_speedup", r["ynn_off_speedup"])]
        return all(v >= lo for v in vals) if lo else all(v <= hi for v in vals)

    def sizes(rs):
        return ", ".join(f"{envs(r['num_envs'])} × {r['num_assets']}" for r in rs) or "none"

    helped = [r for r in rows if both(r, lo=YNN_HELPS)]
    hurt = [r for r in rows if both(r, hi=1 / YNN_HELPS)]
    return (
        f"YNNPACK fusions off helped (≥ {YNN_HELPS:.2f}× by wall and CPU time) at: "
        f"{sizes(helped)}; hurt at: {sizes(hurt)}; within noise elsewhere."
    )


def block_ppo(results: Path) -> str:
    ppo = _load(PPO_JSON, results)
    if ppo is None:
        return _missing(PPO_JSON, "python benchmarks/ppo_throughput.py")
    s = ppo["settings"]
    lines = [
        "| envs | seeds | jaxport PPO env-steps/s | CartPole PPO (PureJaxRL) | ratio "
        "| CPU-time ratio |",
        "|---:|---:|---:|---:|---:|---:|",
    ]
    for r in ppo["rows"]:
        lines.append(
            f"| {r['num_envs']:,} | {r['num_seeds']} | {rate(r['env_steps_per_s'])} | "
            f"{rate(r.get('reference_env_steps_per_s'))} | {ratio(r.get('ratio'))} | "
            f"{ratio(r.get('cpu_time_ratio'))} |"
        )
    bd = ppo.get("env_breakdown")
    if bd:
        lines += [
            "",
            f"Env only (no network, {s['num_envs']:,} envs): portfolio auto-reset step "
            f"{rate(bd['portfolio_step_autoreset_steps_per_s'])} steps/s, CartPole's "
            f"{rate(bd['cartpole_step_autoreset_steps_per_s'])} steps/s.",
        ]
    if ppo.get("ratio_xla_default") is not None:
        opts = ppo.get("compiler_options") or {}
        lines += [
            "",
            f"Both programs compiled with {_options_label(opts)} (per compile). The same pair at "
            f"XLA defaults in the same run: ratio {ratio(ppo['ratio_xla_default'])}; jaxport's "
            f"options speed portfolio PPO up {ratio(ppo.get('ynn_off_speedup'))}.",
        ]
    lines += [
        "",
        f"Settings: {s['num_steps']} steps per rollout, {s['update_epochs']} epochs × "
        f"{s['num_minibatches']} minibatches, 64×64 tanh MLPs, {s['num_assets']} assets; "
        f"{_machine(ppo['machine'])} (`results/{PPO_JSON}`).{load_note(ppo['machine'])}",
    ]
    return "\n".join(lines)


MEMORY_KIND_LABEL = {
    "step": "one batched `env.step`",
    "scan": "simulation loop (throughput harness)",
    "rollout": "`rollout`, 64 steps kept",
    "ppo": "PPO training call, 64-step rollouts",
}


def block_memory(results: Path) -> str:
    mem = _load(MEMORY_JSON, results)
    if mem is None:
        return _missing(MEMORY_JSON, "python benchmarks/env_memory.py")
    from env_memory import max_envs

    assets = sorted({f["num_assets"] for f in mem["fits"]})
    head = "| program | " + " | ".join(f"{n} assets" for n in assets) + " |"
    lines = [head, "|---|" + "---:|" * len(assets)]
    by = {(f["kind"], f["num_assets"]): f for f in mem["fits"]}
    for kind in ("step", "scan", "rollout", "ppo"):
        if not any((kind, n) in by for n in assets):
            continue
        cells = [nbytes(by[(kind, n)]["bytes_per_env"]) if (kind, n) in by else "-" for n in assets]
        lines.append(f"| {MEMORY_KIND_LABEL[kind]} | " + " | ".join(cells) + " |")
    ppo = [by[("ppo", n)] for n in assets if ("ppo", n) in by]
    if ppo:
        lines += [
            "",
            "Largest `num_envs` for PPO (64-step rollouts) by the memory JAX may use, from "
            "these fits: "
            + "; ".join(
                f"{f['num_assets']} assets: "
                + ", ".join(
                    f"{envs_round(max_envs(f, gb * 2**30))} in {gb} GiB" for gb in (16, 80, 141)
                )
                for f in ppo
            )
            + ".",
        ]
    lines += [
        "",
        f"Bytes per env = slope of XLA's compiled memory analysis over num_envs "
        f"({_machine(mem['machine'])}; `results/{MEMORY_JSON}`).",
    ]
    return "\n".join(lines)


def envs_round(b: int) -> str:
    """Round down to a readable size: 3 significant digits."""
    if b < 1000:
        return str(b)
    digits = len(str(b)) - 3
    r = (b // 10**digits) * 10**digits
    return rate(r).replace(" ", "")


def gpu_results(results: Path) -> list[dict]:
    out = []
    for path in sorted(results.glob(GPU_GLOB)):
        d = json.loads(path.read_text())
        if not d.get("smoke"):
            d["_file"] = path.name
            out.append(d)
    return out


def block_gpu(results: Path) -> str:
    runs = gpu_results(results)
    if not runs:
        return (
            "**No GPU numbers have been measured yet**: no accelerator was available to the "
            "sessions that wrote this project. On a machine with one GPU, run\n\n"
            f"```bash\n{GPU_COMMAND}\n```\n\n"
            "(≤ 8 minutes; JSON to `benchmarks/results/gpu_suite-<device>.json`), then "
            "`python benchmarks/make_tables.py` to put its tables here."
        )
    from gpu_suite import markdown

    parts = []
    for d in runs:
        parts += [
            f"From `results/{d['_file']}` ({d.get('started_utc', '?')}):",
            "",
            markdown(d),
            "",
        ]
    return "\n".join(parts).rstrip()


def block_readme_table(results: Path) -> str:
    env = _load(ENV_JSON, results)
    ppo = _load(PPO_JSON, results)
    fc = _load(FORECASTER_JSON, results)
    lines = ["| benchmark | jaxport | reference | ratio |", "|---|---|---|---|"]
    b, n = HEADLINE
    r = _row(env, b, n) if env else None
    if r:
        label = f"env steps/s, {b:,} envs × {n} assets (`benchmarks/env_throughput.py`)"
        lines.append(
            f"| {label} | {rate(r['jax_steps_per_s'])} | gymnax CartPole "
            f"{rate(r.get('cartpole_steps_per_s'))} | {ratio(r.get('vs_cartpole'))}"
            + (f" ({ratio(r['cpu_vs_cartpole'])} by CPU time)" if "cpu_vs_cartpole" in r else "")
            + " |"
        )
        for key, text in (
            ("torch_compile", "the same step as batched Torch under `torch.compile`"),
            ("torch_eager", "batched Torch eager"),
            ("gym_loop", "the Torch Gymnasium env in a Python loop"),
        ):
            if f"{key}_steps_per_s" in r:
                lines.append(
                    f"| same, vs {text} | {rate(r['jax_steps_per_s'])} | "
                    f"{rate(r[f'{key}_steps_per_s'])} | {ratio(r[f'vs_{key}'])} |"
                )
    else:
        lines.append("| env steps/s | no results yet (`python benchmarks/env_throughput.py`) | | |")
    if ppo:
        s = ppo["settings"]
        lines.append(
            f"| PPO env steps/s, {s['num_envs']:,} envs × {s['num_steps']} steps, "
            f"{s['update_epochs']} epochs × {s['num_minibatches']} minibatches, 64×64 "
            f"(`benchmarks/ppo_throughput.py`) | {rate(ppo['env_steps_per_s'])} | "
            f"PureJaxRL CartPole PPO {rate(ppo.get('reference_env_steps_per_s'))} | "
            f"{ratio(ppo.get('ratio'))} |"
        )
    if fc:
        for name, run in fc.get("runs", {}).items():
            wps = _windows_per_s(run)
            if wps:
                lines.append(
                    f"| forecaster training, {name} profile (`benchmarks/"
                    f"forecaster_eval.py`) | {rate(wps)} windows/s | | |"
                )
    machine = (env or ppo or {}).get("machine")
    if machine:
        lines += [
            "",
            f"Measured on: {_machine(machine, (env or {}).get('torch'))}; the env "
            f"column uses {_headline_label(env) if env else 'XLA defaults'}." + load_note(machine),
        ]
    when = [
        f"{label} {provenance(r)}{_load_avg((r or {}).get('machine') or {})}"
        for label, r in (("env:", env), ("PPO:", ppo), ("forecaster:", fc))
        if r
    ]
    if when:
        lines.append("When: " + "; ".join(when) + ".")
    return "\n".join(lines)


def _windows_per_s(run: dict) -> float | None:
    tr = run.get("train", {})
    for key in ("windows_per_s", "train_windows_per_s"):
        if key in tr:
            return float(tr[key])
    hist = tr.get("history", {})
    steps = (hist.get("steps") or [None])[-1]
    bs = tr.get("train_config", {}).get("batch_size")
    if steps and bs and run.get("train_wall_s"):
        return steps * bs / run["train_wall_s"]
    return None


def block_readme_gpu(results: Path) -> str:
    runs = gpu_results(results)
    if not runs:
        return (
            "No GPU numbers have been measured yet (no accelerator was available). "
            f"`{GPU_COMMAND}` measures them in ≤ 8 minutes on one GPU; see "
            "[benchmarks/README.md](benchmarks/README.md#gpu)."
        )
    kinds = ", ".join(d.get("device", {}).get("device_kind", "?") for d in runs)
    return (
        f"GPU results ({kinds}, `{GPU_COMMAND}`) are in "
        "[benchmarks/README.md](benchmarks/README.md#gpu)."
    )


WALK_FORWARD_GLOB = "walk_forward_gap-*.json"


def _import_jaxport() -> None:
    """Make this checkout's ``jaxport`` importable (its config and labels modules import no JAX)."""
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))


def default_gate_variant() -> str:
    """Today's default gate as ``walk_forward_gap`` names its replays (``<rule>/<fallback>``), read
    from the config so the table follows the default."""
    _import_jaxport()
    from jaxport.pipeline.config import RLConfig

    rl = RLConfig()
    return f"{rl.gate_rule}/{rl.gate_fallback}"


def block_walk_forward(results: Path) -> str:
    """Shipped-data walk-forward runs (``benchmarks/walk_forward_gap.py``): the test Sharpe gap
    to 1/N of each learned candidate and of the shipped policy, over pair x fold."""
    _import_jaxport()
    from jaxport.pipeline.labels import scales_text

    runs = [json.loads(p.read_text()) for p in sorted(results.glob(WALK_FORWARD_GLOB))]
    if not runs:
        return (
            f"_No results yet: `{WALK_FORWARD_GLOB}` is written by "
            "`benchmarks/walk_forward_gap.py RUN_DIR`._"
        )
    lines = [
        "| run | rl (scope, algo, seeds; objective, anchor[; tilt]) | policy | pair-folds | median gap "
        "| mean gap | share ≥ 0 | learned shipped (share; test mean gap, win rate) "
        "| pooled gap [95 % CI] | pooled gap to its anchor rule [95 % CI] "
        "| lost > 10 % while 1/N gained (pair-folds; worst test return then) | PBO | DSR (median) "
        "| test turnover/day | test gross | wall |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]

    def cell(x, fmt):
        return "—" if x is None else format(x, fmt)

    def losses(lo):
        if not lo:
            return "—"
        worst = "—" if lo["worst"] is None else f"{lo['worst']:+.1%}"
        return f"{lo['count']} of {lo['pair_folds']}; {worst}"

    def interval(pool):
        return (
            f"{pool['mean']:+.3f} [{pool['ci95'][0]:+.3f}, {pool['ci95'][1]:+.3f}]" if pool else "—"
        )

    for run in runs:
        agg, cfg, pooled = run["aggregate"], run["config"], run.get("pooled") or {}
        proto = pooled.get("protocol") or {}
        rl = f"{cfg.get('scope') or 'pair'}, {cfg.get('algo')}, {cfg.get('seeds') or 1}"
        rl += f"; {proto.get('objective') or 'mean-variance'}, {proto.get('anchor') or 'none'}"
        scales = [float(x) for x in cfg.get("tilt_scales") or [1.0]]
        if scales != [1.0]:  # the tilt's scale was chosen on held-out rows
            rl += f"; tilt scales {scales_text(scales)}"
        if cfg.get("tilt_penalty"):
            rl += f"; tilt penalty {cfg['tilt_penalty']:g}"
        wall = run["facts"].get("total_s")
        minutes = f"{wall / 60:.0f} min" if wall else ""

        def shipped_extra(pairs):  # [(shipped name, test gap)] of every pair-fold
            learned = [g for name, g in pairs if not name.startswith("baseline")]
            share = len(learned) / max(len(pairs), 1)
            mean = sum(learned) / len(learned) if learned else None
            wins = sum(g > 0 for g in learned) / len(learned) if learned else None
            return f"{share:.0%}; {cell(mean, '+.3f')}, {cell(wins, '.0%')}"

        extra = {"shipped": shipped_extra([(r["shipped"], r["shipped_gap"]) for r in run["rows"]])}
        vs_rules = pooled.get("candidates_vs_baselines") or {}
        lost = pooled.get("losses_while_equal_weight_gains") or {}
        rows = [("shipped", agg["shipped_gap"], None, None, pooled.get("shipped"))]
        # today's default gate replayed on the run's own gate rows, where the run used another
        replay = default_gate_variant()
        # runs from before --gate-rule / --gate-fallback gated like every_baseline/equal_weight
        ran = f"{proto.get('gate_rule') or 'every_baseline'}/{proto.get('gate_fallback') or 'equal_weight'}"
        if ran != replay and replay in (agg.get("gate_variants") or {}):
            name = f"shipped by the {replay} gate (replayed)"
            extra[name] = shipped_extra(
                [(r["gate_variants"][replay]["shipped"], r["gate_variants"][replay]["gap"])
                 for r in run["rows"]]
            )  # fmt: skip
            pool = (pooled.get("gate_variants") or {}).get(replay)
            rows.append((name, agg["gate_variants"][replay], None, None, pool))
        rows += [
            (a, c["test_gap"], c["test_turnover"], c.get("test_leverage"),
             (pooled.get("candidates") or {}).get(a))
            for a, c in agg["candidates"].items()
        ]  # fmt: skip
        for name, st, to, lev, pool in rows:
            if st is None:
                continue
            is_shipped = name in extra
            # the learned candidate against the rule it starts from (anchored policies only)
            vs_anchor = (vs_rules.get(name) or {}).get(proto.get("anchor") or "none")
            anchor_gap = "" if is_shipped else interval(vs_anchor)
            lines.append(
                f"| {run['label']} | {rl} | {name} | {st['n']} | {st['median']:+.3f} | "
                f"{st['mean']:+.3f} | {st['share_ge_0']:.0%} | "
                f"{extra.get(name, '')} | {interval(pool)} | {anchor_gap} | "
                f"{losses(lost.get(name))} | "
                f"{cell(pooled.get('pbo_mean'), '.2f') if not is_shipped else ''} | "
                f"{cell(pooled.get('dsr_median'), '.2f') if name == 'shipped' else ''} | "
                f"{cell(to and to['median'], '.3f') if to else ''} | "
                f"{cell(lev and lev['median'], '.2f') if lev else ''} | {minutes} |"
            )
    return "\n".join(lines)


RULE_SELECTION_GLOB = "rule_selection_oos-*-latest.json"


def block_rule_selection(results: Path) -> str:
    """Standard and literature allocators vs 1/N on each universe's test years, and the rule
    chosen per year on earlier days only (``benchmarks/rule_selection_oos.py``)."""
    runs = [json.loads(p.read_text()) for p in sorted(results.glob(RULE_SELECTION_GLOB))]
    if not runs:
        return f"_No results yet: `{RULE_SELECTION_GLOB}` is written by `benchmarks/rule_selection_oos.py`._"
    lines = [
        "| universe | test years (pairs) | rule | pooled test Sharpe gap to 1/N [95 % CI] "
        "| pair-years beating 1/N | chosen in (folds) |",
        "|---|---|---|---|---|---|",
    ]
    for run in runs:
        folds = run["folds"]
        span = f"{folds[0]['test_first'][:4]}–{folds[-1]['test_last'][:4]} ({run['num_pairs']})"
        picks = [f["chosen"] for f in folds]
        pooled = dict(
            run["pooled_test_gap"], **{"chosen on history": run["chosen_pooled_test_gap"]}
        )
        for name, p in pooled.items():
            if name == "equal_weight":
                continue
            gaps = [f["rule_test_gaps"].get(name) for f in folds]
            chosen = name == "chosen on history"
            wins = [f["chosen_test_gap"] > 0 for f in folds] if chosen else [g > 0 for g in gaps]
            lines.append(
                f"| {run['label']} | {span} | {'**' + name + '**' if chosen else name} | "
                f"{p['mean']:+.3f} [{p['ci95'][0]:+.3f}, {p['ci95'][1]:+.3f}] | "
                f"{sum(wins)}/{len(wins)} years (mean over pairs) | "
                f"{'' if chosen else picks.count(name)} |"
            )
    lines += [
        "",
        "When (each run on the 2-core CPU development machine): "
        + "; ".join(f"{run['label']} {provenance(run)}" for run in runs)
        + ".",
    ]
    return "\n".join(lines)


DEFAULT_SELECTION_GLOB = "default_selection-*.json"


def block_default_selection(results: Path) -> str:
    """Inner walk-forward runs that chose the defaults (``benchmarks/default_selection.py``): each
    run's learned candidate on the inner test days, and every gate rule replayed on them."""
    runs = [json.loads(p.read_text()) for p in sorted(results.glob(DEFAULT_SELECTION_GLOB))]
    if not runs:
        return f"_No results yet: `{DEFAULT_SELECTION_GLOB}` is written by `benchmarks/default_selection.py`._"
    lines = []
    for run in runs:
        inner = next(iter(run["protocol"]["inner"].values()))
        lines += [
            f"Inner folds ({run['label']}): data {inner['data_first']} to {inner['data_last']}, "
            f"{inner['folds']} folds testing {inner['test_first']} to {inner['test_last']}, baskets "
            f"{', '.join(inner['baskets'])}; the first reported test day is "
            f"{run['protocol']['reported_test_start']}. {provenance(run).capitalize()}.",
            "",
            "| inner run | setting changed from the previous defaults | learned candidate: pooled gap "
            "[95 % CI] | median gap | PBO | test turnover/day | test gross |",
            "|---|---|---|---|---|---|---|",
        ]
        for t in run["runs"]:
            changed = ", ".join(f"{k} = {v}" for k, v in t["changed"].items()) or "(none)"
            mark = "**" if t["label"] == run["chosen_run"] else ""
            ci = t["candidate_ci95"]
            lines.append(
                f"| {mark}{t['label']}{mark} | {changed} | {t['candidate_pooled_gap']:+.3f} "
                f"[{ci[0]:+.3f}, {ci[1]:+.3f}] | {t['candidate_median_gap']:+.3f} | "
                f"{t['pbo']:.2f} | {t['test_turnover']:.3f} | {t['test_gross']:.2f} |"
            )
        lines += [
            "",
            "| gate rule / fallback (replayed on every inner pair-fold) | mean shipped gap "
            "| median | share ≥ 0 | learned shipped | pair-folds |",
            "|---|---|---|---|---|---|",
        ]
        for name, g in run["gate_variants"].items():
            mark = "**" if name == run["chosen_gate"] else ""
            lines.append(
                f"| {mark}{name}{mark} | {g['mean_gap']:+.4f} | {g['median_gap']:+.3f} | "
                f"{g['share_ge_0']:.0%} | {g['learned_share']:.0%} | {g['n']} |"
            )
    return "\n".join(lines)


STRESS_JSON = "stress_quickstart.json"
STRESS_THROUGHPUT_JSON = "stress_throughput-latest.json"
STRESS_POLICIES = (
    "shipped",
    "universe",
    "equal_weight",
    "inverse_volatility",
    "minimum_variance",
    "risk_parity",
    "cash",
)


def block_stress(results: Path) -> str:
    """``jaxport stress`` on the quick-start run (a copy of its stress.json): per basket, total
    return quantiles and the probabilities, in percent."""
    data = _load(STRESS_JSON, results)
    if data is None:
        return _missing(STRESS_JSON, "jaxport stress RUN_DIR (copy RUN_DIR/stress/stress.json)")
    m = data.get("measured", {})
    t = data["throughput"]
    lines = [
        f"{data['paths']:,} paths x {data['horizon']} days, stationary bootstrap of the "
        f"{data['source']} rows (mean block {data['block_length']:.0f} days, Politis-White), seed "
        f"{data['seed']}; {t['policy_runs']} policy runs; the whole command took "
        f"{m.get('command_wall_s', 0):.0f} s wall and {m.get('command_cpu_s', 0):.0f} s CPU, "
        f"compilation included ({m.get('machine', '?')}, load average {m.get('load', '?')})."
        + (
            f" 100,000 paths: {big['command_wall_s']:.0f} s wall, {big['command_cpu_s']:.0f} s "
            f"CPU (load {big['load']})."
            if (big := m.get("paths_100k"))
            else ""
        ),
        "",
        "| basket | policy | return q05 | median | q95 | P(loss) | P(DD > 20 %) | P(DD > 50 %) "
        "| P(ruin) | CVaR 5 % | P(beats 1/N) | median Sharpe |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, basket in data["baskets"].items():
        labels = [p for p in STRESS_POLICIES if p in basket]
        labels += sorted(p for p in basket if p.startswith("buy_and_hold"))
        for label in labels:
            s, tr = basket[label], basket[label]["total_return"]
            shown = f"shipped ({data['shipped_as'][name]})" if label == "shipped" else label
            lines.append(
                f"| {name} | {shown} | {tr['q05']:+.1%} | {tr['q50']:+.1%} | {tr['q95']:+.1%} | "
                f"{s['prob_loss']:.1%} | {s['prob_drawdown_gt_20']:.1%} | "
                f"{s['prob_drawdown_gt_50']:.1%} | {s['prob_ruin']:.2%} | "
                f"{s['cvar05_total_return']:+.1%} | {s.get('prob_beats_equal_weight', 0):.1%} | "
                f"{s['sharpe']['q50']:.2f} |"
            )
    return "\n".join(lines)


def block_stress_throughput(results: Path) -> str:
    """``benchmarks/stress_throughput.py``: path-steps/s vs the bare env, over path counts."""
    data = _load(STRESS_THROUGHPUT_JSON, results)
    if data is None:
        return _missing(STRESS_THROUGHPUT_JSON, "benchmarks/stress_throughput.py")
    load = ", ".join(f"{x:.1f}" for x in data.get("load_avg", []))
    lines = [
        f"Bare env (`jaxport.bench`, {data['env_batch']} envs, {data['num_assets']} assets x "
        f"{data['num_features']} features, same process): {rate(data['env_steps_per_s'])} "
        f"steps/s; {_machine(data['machine'])}; load average at the end {load}.",
        "",
        "| policy | paths | first call (compile + run) | warm wall | path-steps/s | vs bare env |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for r in data["rows"]:
        lines.append(
            f"| {r['policy']} | {r['paths']:,} | {r['first_call_s']:.1f} s | {r['wall_s']:.2f} s | "
            f"{rate(r['path_steps_per_s'])} | {r['vs_env']:.2f}x |"
        )
    return "\n".join(lines)


#: (file relative to the repository root, block name) -> renderer(results_dir)
LIQUIDATION_JSON = "env_liquidation_cost.json"
RL_OPTIONS_JSON = "rl_xla_options.json"


def block_liquidation(results: Path) -> str:
    """``env_liquidation_cost.py``: the env step with and without the bankruptcy liquidation."""
    liq = _load(LIQUIDATION_JSON, results)
    if liq is None:
        return _missing(LIQUIDATION_JSON, "python benchmarks/env_liquidation_cost.py")
    lines = [
        "| envs | assets | XLA options | shipped step | without liquidation | cost | CartPole "
        "| shipped / CartPole |",
        "|---:|---:|---|---:|---:|---:|---:|---:|",
    ]
    for r in liq["rows"]:
        for tag, label in (("default", "XLA defaults"), ("tuned", "jaxport's")):
            if f"library_{tag}_steps_per_s" not in r:
                continue
            lines.append(
                f"| {envs(r['num_envs'])} | {r['num_assets']} | {label} "
                f"| {rate(r[f'library_{tag}_steps_per_s'])} "
                f"| {rate(r[f'no_liquidation_{tag}_steps_per_s'])} "
                f"| {100 * r[f'liquidation_cost_{tag}']:.0f} % "
                f"| {rate(r[f'cartpole_{tag}_steps_per_s'])} "
                f"| {ratio(r[f'library_vs_cartpole_{tag}'])} |"
            )
    lines += [
        "",
        f"Cost = 1 - shipped / without (negative: within noise). {_machine(liq['machine'])}; "
        f"{provenance(liq)} (`results/{LIQUIDATION_JSON}`).{load_note(liq['machine'])}",
    ]
    return "\n".join(lines)


def block_rl_options(results: Path) -> str:
    """``rl_xla_options.py``: training programs at XLA defaults vs jaxport's options."""
    rl = _load(RL_OPTIONS_JSON, results)
    if rl is None:
        return _missing(RL_OPTIONS_JSON, "python benchmarks/rl_xla_options.py")
    lines = [
        "| program | XLA defaults | jaxport's options | speed-up (wall) | speed-up (CPU time) |",
        "|---|---:|---:|---:|---:|",
    ]
    for r in rl["rows"]:
        lines.append(
            f"| {r['program']} | {rate(r['default_steps_per_s'])} "
            f"| {rate(r['tuned_steps_per_s'])} | {ratio(r['tuned_speedup'])} "
            f"| {ratio(r['tuned_cpu_speedup'])} |"
        )
    lines += [
        "",
        f"Env-steps/s of one training call. {_machine(rl['machine'])}; {provenance(rl)} "
        f"(`results/{RL_OPTIONS_JSON}`).{load_note(rl['machine'])}",
    ]
    return "\n".join(lines)


BLOCKS: dict[tuple[str, str], Callable[[Path], str]] = {
    ("benchmarks/README.md", "env-liquidation"): block_liquidation,
    ("benchmarks/README.md", "rl-xla-options"): block_rl_options,
    ("benchmarks/README.md", "env-cpu"): block_env_cpu,
    ("benchmarks/README.md", "env-grid"): block_env_grid,
    ("benchmarks/README.md", "xla-ynn"): block_ynn,
    ("benchmarks/README.md", "ppo"): block_ppo,
    ("benchmarks/README.md", "memory"): block_memory,
    ("benchmarks/README.md", "gpu"): block_gpu,
    ("README.md", "benchmarks"): block_readme_table,
    ("README.md", "gpu"): block_readme_gpu,
    ("README.md", "walk-forward"): block_walk_forward,
    ("README.md", "rule-selection"): block_rule_selection,
    ("README.md", "default-selection"): block_default_selection,
    ("README.md", "stress"): block_stress,
    ("README.md", "stress-throughput"): block_stress_throughput,
}


def _markers(name: str) -> tuple[str, str]:
    return f"<!-- make_tables:{name} begin -->", f"<!-- make_tables:{name} end -->"


def replace_block(text: str, name: str, body: str, where: str = "text") -> str:
    """``text`` with the content between ``name``'s markers replaced by ``body``."""
    begin, end = _markers(name)
    pat = re.compile(re.escape(begin) + r"\n.*?" + re.escape(end), re.S)
    if len(pat.findall(text)) != 1:
        raise ValueError(f"{where}: expected exactly one block {begin} ... {end}")
    return pat.sub(lambda m: f"{begin}\n{body}\n{end}", text)


def current_block(text: str, name: str) -> str | None:
    begin, end = _markers(name)
    m = re.search(re.escape(begin) + r"\n(.*?)\n?" + re.escape(end), text, re.S)
    return None if m is None else m.group(1)


def render_all(root: Path = ROOT, results: Path = RESULTS) -> dict[str, str]:
    """``{file: new text}`` for every file with blocks."""
    out: dict[str, str] = {}
    for (fname, name), fn in BLOCKS.items():
        text = out.get(fname)
        if text is None:
            text = (root / fname).read_text()
        out[fname] = replace_block(text, name, fn(results).rstrip(), fname)
    return out


def stale_blocks(root: Path = ROOT, results: Path = RESULTS) -> list[str]:
    """``file:block`` names whose committed text differs from what the JSON renders."""
    new = render_all(root, results)
    stale = []
    for (fname, name), _ in BLOCKS.items():
        old_text = (root / fname).read_text()
        if current_block(old_text, name) != current_block(new[fname], name):
            stale.append(f"{fname}:{name}")
    return stale


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--check", action="store_true", help="report stale blocks, change nothing")
    args = p.parse_args(argv)
    if args.check:
        stale = stale_blocks()
        for s in stale:
            print(f"stale: {s} (run python benchmarks/make_tables.py)")
        return 1 if stale else 0
    for fname, text in render_all().items():
        path = ROOT / fname
        if path.read_text() != text:
            tmp = path.with_suffix(path.suffix + ".tmp")
            tmp.write_text(text)
            os.replace(tmp, path)
            print(f"updated {fname}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
