"""Common fixtures: repository paths, the shipped real data (trainingdata/), synthetic universes."""

from __future__ import annotations

import atexit
import shutil
import tempfile
from pathlib import Path

import jax
import pytest

# Programs compiled by one test (e.g. a pipeline run) are reused by the next one compiling the same
# computation (the resumed run, the next module's small programs after ``jax.clear_caches()``): a
# per-process persistent compilation cache, every program in it (no minimum compile time: the
# small ones repeat across modules too; measured ~4 % less CPU on five modules), removed at exit.
_CACHE_DIR = Path(tempfile.mkdtemp(prefix="jaxport-jit-cache-"))
atexit.register(shutil.rmtree, _CACHE_DIR, ignore_errors=True)
jax.config.update("jax_compilation_cache_dir", str(_CACHE_DIR))
jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)

from helpers import EXPENSIVE_SCOPES, xdist_scope
from jaxport.data import load_market
from jaxport.data.synth import generate_synthetic_market

REPO_ROOT = Path(__file__).resolve().parents[1]
SHIPPED_DATA_DIR = REPO_ROOT / "trainingdata"
REAL_SYMBOLS = ("AAPL", "AMZN", "GOOGL", "META", "MSFT", "NVDA", "TSLA")
REAL_ROWS = 2768


@pytest.hookimpl(optionalhook=True)  # a pytest-xdist hook; without xdist it is never called
def pytest_xdist_make_scheduler(config, log):
    """``pytest -n N`` (xdist's default ``load`` or ``--dist loadfile``): each test module runs on
    one worker (its module fixtures, e.g. a pipeline run, and the programs it compiles are built
    once), and the modules of ``helpers.QUICK_START_MODULES`` run on the same worker
    (``helpers.xdist_scope``); the longest units (``helpers.EXPENSIVE_SCOPES``) go out first."""
    if config.getvalue("dist") not in ("load", "loadfile"):
        return None
    from xdist.scheduler import LoadFileScheduling

    class ModuleScheduling(LoadFileScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return xdist_scope(nodeid)

        def _assign_work_unit(self, node) -> None:
            # longest first (helpers.EXPENSIVE_SCOPES), then xdist's order (most tests first)
            for scope in reversed(EXPENSIVE_SCOPES):
                if scope in self.workqueue:
                    self.workqueue.move_to_end(scope, last=False)
            super()._assign_work_unit(node)

    return ModuleScheduling(config, log)


@pytest.fixture(autouse=True, scope="module")
def _release_compiled_programs():
    """Drop every in-memory compiled program after each test module. One process compiles
    thousands of XLA programs over the suite; each holds memory maps, and near the kernel's
    ``vm.max_map_count`` (65,530 here) a compile segfaulted. Programs still repeat across modules
    through the persistent cache above."""
    yield
    jax.clear_caches()


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO_ROOT


@pytest.fixture(scope="session")
def shipped_data_dir() -> Path:
    """The repository's own ``trainingdata/`` (seven real symbols, 2013-01-02 .. 2023-12-29)."""
    if not any(SHIPPED_DATA_DIR.glob("*.csv")):  # part of every clone: a missing copy is an error
        raise FileNotFoundError(f"{SHIPPED_DATA_DIR} has no CSV files; the repository ships them")
    return SHIPPED_DATA_DIR


@pytest.fixture(scope="session")
def real_market(shipped_data_dir):
    """All seven real symbols of ``trainingdata/``, aligned (2013-01-02 .. 2023-12-29)."""
    return load_market(shipped_data_dir)


@pytest.fixture(scope="session")
def synthetic_market():
    """A small synthetic universe (6 symbols x 400 business days, no planted signal)."""
    return generate_synthetic_market(num_symbols=6, num_days=400, seed=0)


@pytest.fixture(scope="session")
def quick_start_run(tmp_path_factory):
    """README's first command (``jaxport train``, the quick profile on the shipped data), run once
    as written from a fresh folder that holds ``trainingdata/`` and ``examples/`` as a user's clone
    does: ``(folder, the command's output)``. The quick-start test checks the run; the README test
    exports it and runs every README Python block there."""
    from typer.testing import CliRunner

    from helpers import readme_train_args
    from jaxport.cli import app

    root = tmp_path_factory.mktemp("quick_start")
    for name in ("trainingdata", "examples"):
        (root / name).symlink_to(REPO_ROOT / name, target_is_directory=True)
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(root)
        result = CliRunner().invoke(app, readme_train_args())
    assert result.exit_code == 0, result.output
    return root, result.output


@pytest.fixture
def cli_runner(monkeypatch):
    """A typer CliRunner whose rich console is wide enough not to fold table cells."""
    from typer.testing import CliRunner

    import jaxport.cli as cli

    monkeypatch.setattr(cli.console, "_width", 250)
    monkeypatch.setattr(cli.err_console, "_width", 250)
    return CliRunner()
