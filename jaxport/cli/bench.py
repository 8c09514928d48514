"""``jaxport bench``: a small default throughput benchmark (full sweeps live in ``benchmarks/``)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from jaxport.cli.common import console, fail


def _ints(value: str, flag: str) -> tuple[int, ...]:
    """``"64,1024"`` -> ``(64, 1024)``; one ``error:`` line naming ``flag`` otherwise."""
    try:
        out = tuple(int(v) for v in value.split(",") if v.strip())
    except ValueError:
        fail(f"{flag} {value!r}: expected comma-separated integers")
    if not out or min(out) < 1:
        fail(f"{flag} {value!r}: expected positive integers")
    return out


def register(app: typer.Typer) -> None:
    @app.command("bench")
    def bench(
        num_envs: Annotated[
            str, typer.Option("--num-envs", help="Batch sizes, comma-separated.")
        ] = "64,1024,4096",
        num_assets: Annotated[
            str, typer.Option("--num-assets", help="Assets per env, comma-separated.")
        ] = "2,8",
        repeats: Annotated[
            int, typer.Option("--repeats", min=1, help="Timed repeats (best is reported).")
        ] = 5,
        no_cartpole: Annotated[
            bool, typer.Option("--no-cartpole", help="Skip the gymnax CartPole yardstick.")
        ] = False,
        json_out: Annotated[
            Optional[Path], typer.Option("--json", help="Write the results as JSON here.")
        ] = None,
    ) -> None:
        """PortfolioEnv env-steps/s next to gymnax CartPole-v1 in the same harness.

        jit + vmap + scan on this machine's default device; the best of --repeats timed runs.
        """
        envs, assets = _ints(num_envs, "--num-envs"), _ints(num_assets, "--num-assets")
        from jaxport.bench import run_default_bench, table_footer, table_header
        from jaxport.checkpoint import atomic_write_json

        def say(line: str) -> None:  # whole lines, never wrapped
            console.print(line, highlight=False, soft_wrap=True)

        for line in table_header():
            say(line)
        result = run_default_bench(  # each row printed once, as soon as it is measured
            num_envs=envs,
            num_assets=assets,
            repeats=repeats,
            cartpole=not no_cartpole,
            log=say,
        )
        say(table_footer(result))
        if json_out is not None:
            atomic_write_json(json_out, result)
            console.print(f"written: {json_out}")
