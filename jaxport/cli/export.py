"""``jaxport export RUN_DIR --to DIR``: a run's forecasters and policies as Torch checkpoints.

The only command that needs the Torch extra; torch and :mod:`torch_compat` are imported inside it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from jaxport.cli.common import TORCH_INSTALL_HINT, console, fail

#: Modules of the ``jaxport[torch]`` extra; an ImportError naming one means the extra is missing.
TORCH_EXTRA_MODULES = ("torch", "torch_compat", "gymnasium", "array_api_compat")
TORCH_EXTRA_HINT = (
    f"jaxport export needs the Torch extra: {TORCH_INSTALL_HINT} "
    "(the CPU wheel the README installs; elsewhere take torch's CPU build from PyTorch's index)"
)
FORMATS = ("safetensors", "pt", "both")  # torch_compat.serialization.EXPORT_FORMATS, checked early


def register(app: typer.Typer) -> None:
    @app.command("export")
    def export(
        run_dir: Annotated[Path, typer.Argument(help="The --output-dir of a jaxport train run.")],
        to: Annotated[
            Path, typer.Option("--to", help="Output folder for the weights and JSON configs.")
        ],
        env_data: Annotated[
            bool,
            typer.Option(
                "--env-data/--no-env-data",
                help="Also write each pair's test-episode arrays (.env.npz) for Torch-only replay.",
            ),
        ] = True,
        format: Annotated[
            str,
            typer.Option("--format", help="Weight files: safetensors | pt | both."),
        ] = "both",
    ) -> None:
        """Export a run's forecasters and portfolio policies as Torch checkpoints (nn.Module)."""
        if format not in FORMATS:
            fail(f"--format {format!r}: expected one of {', '.join(FORMATS)}")
        if not Path(run_dir).exists():
            fail(f"{run_dir}: no such run directory")
        try:
            from torch_compat.export import export_run
        except ImportError as exc:
            if (exc.name or "").split(".")[0] not in TORCH_EXTRA_MODULES:
                raise
            fail(TORCH_EXTRA_HINT)
        paths = export_run(run_dir, to, env_data=env_data, format=format)
        for path in paths:
            console.print(str(path), highlight=False, soft_wrap=True)
        _print_policies(Path(to))
        console.print(f"exported {len(paths)} file(s) to {to}")


def _print_policies(out: Path) -> None:
    """One line per exported policy: its name and label (shipped / learned (not shipped))."""
    import json

    try:
        manifest = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return
    for name, entry in manifest.get("models", {}).items():
        if "label" in entry:
            console.print(f"{name}: {entry['label']}", highlight=False, soft_wrap=True)
    for name, why in manifest.get("skipped", {}).items():
        console.print(f"{name}: not exported ({why})", highlight=False, soft_wrap=True)
