"""Builders the tests share (one copy each): the env state's accounting fields, random-walk
markets, the perturbed network parameters the export tests compare across frameworks,
README.md's commands and Python blocks, and the scripts of ``benchmarks/`` as modules."""

from __future__ import annotations

import importlib.util
import re
import shlex
import sys
from pathlib import Path
from types import ModuleType

import jax
import jax.numpy as jnp
import numpy as np

REPO_ROOT = Path(__file__).resolve().parents[1]
README = REPO_ROOT / "README.md"
BENCHMARKS_DIR = REPO_ROOT / "benchmarks"

#: The test modules (node-id paths) that use the ``quick_start_run`` session fixture, a real
#: ``jaxport train`` of minutes: ``pytest -n N`` runs them on one worker (tests/conftest.py's
#: scheduler), so the run happens once per session.
QUICK_START_MODULES = ("tests/test_pipeline.py", "tests/test_readme.py")


#: The units of work (``xdist_scope``) that take longest, longest first (end-to-end runs; from
#: ``pytest --durations=0`` on 2 cores): ``pytest -n N`` hands them out before the rest, so no
#: worker starts a long module while the other has run out of work.
EXPENSIVE_SCOPES = (
    "quick_start",
    "tests/test_stress.py",
    "tests/test_walk_forward.py",
    "tests/test_ppo.py",
    "tests/test_universe.py",
    "tests/test_universe_ppo.py",
    "tests/test_gate.py",
    "tests/test_distributed.py",
    "tests/test_gradient.py",
    "tests/test_export.py",
    "tests/test_train_devices.py",
    "tests/test_bench_gpu_suite.py",
    "tests/test_universe_anchor.py",
    "tests/test_env.py",
    "tests/test_forecast.py",
)


def xdist_scope(nodeid: str) -> str:
    """The unit of work ``pytest -n N`` gives one worker for the test ``nodeid``: its module, or
    ``"quick_start"`` for every module of :data:`QUICK_START_MODULES`."""
    module = nodeid.split("::", 1)[0]
    return "quick_start" if module in QUICK_START_MODULES else module


#: ``EnvState`` fields that carry the episode's accounting (every field but ``last_reward``), in
#: declaration order; the reference env's state dict has exactly these keys.
ENV_STATE_FIELDS = (
    "t",
    "time",
    "equity",
    "weights",
    "open_trade_pnl",
    "gross_pnl",
    "fees",
    "financing",
    "num_trades",
    "winning_trades",
)


def random_walk_market(T: int, N: int, F: int, seed: int = 0, vol: float = 0.03):
    """``(prices [T, N] float64, features [T, N, F] float32)``: a log-normal random walk from 100
    with per-day log-return std ``vol``, and standard-normal features."""
    rng = np.random.default_rng(seed)
    prices = 100.0 * np.exp(np.cumsum(rng.normal(0.0, vol, (T, N)), axis=0))
    return prices, rng.normal(size=(T, N, F)).astype(np.float32)


def perturb_tree(tree, seed: int, scale: float = 0.3):
    """``tree`` plus Gaussian noise (std ``scale``) on every leaf: parameters far from their
    initialisation, so a framework port cannot match by accident."""
    leaves, treedef = jax.tree.flatten(tree)
    rng = np.random.default_rng(seed)
    return jax.tree.unflatten(
        treedef,
        [np.asarray(x) + scale * rng.normal(size=np.shape(x)).astype(np.float32) for x in leaves],
    )


def ppo_params_and_norm(cfg, num_assets: int, obs_dim: int, seed: int = 0, count: float = 100.0):
    """Perturbed actor-critic parameters of ``cfg`` and a non-trivial observation normaliser."""
    from jaxport.rl import RunningMeanStd
    from jaxport.rl.ppo import make_network

    params = jax.jit(make_network(cfg, num_assets).init)(
        jax.random.PRNGKey(seed), jnp.zeros((obs_dim,))
    )
    params = perturb_tree(params, seed)
    rng = np.random.default_rng(seed + 1)
    norm = RunningMeanStd(
        mean=jnp.asarray(rng.normal(size=obs_dim), jnp.float32),
        var=jnp.asarray(rng.uniform(0.5, 2.0, obs_dim), jnp.float32),
        count=jnp.float32(count),
    )
    return params, norm


def readme_commands() -> list[str]:
    """The lines of README.md's first code block (the two setup commands)."""
    text = README.read_text(encoding="utf-8")
    block = re.search(r"^```[a-z]*\n(.*?)^```", text, flags=re.S | re.M).group(1)
    return [line.strip() for line in block.strip().splitlines()]


def readme_train_args() -> list[str]:
    """The arguments of ``jaxport train`` in README's first command (after the install step)."""
    first = readme_commands()[0]
    train = first.split("&&")[-1].strip()
    argv = shlex.split(train)
    assert argv[:2] == ["jaxport", "train"], first
    return argv[1:]


def readme_python_blocks() -> list[str]:
    """The body of every ```python block of README.md, in order."""
    text = README.read_text(encoding="utf-8")
    return re.findall(r"^```python\n(.*?)^```", text, flags=re.S | re.M)


def load_benchmark(name: str) -> ModuleType:
    """The script ``benchmarks/<name>.py`` imported as module ``name`` (once per process, like an
    ``import``: later calls return the same module). ``benchmarks/`` goes on ``sys.path`` first so
    the script's own ``import common`` etc. resolve."""
    path = BENCHMARKS_DIR / f"{name}.py"
    loaded = sys.modules.get(name)
    if loaded is not None and Path(getattr(loaded, "__file__", "")).resolve() == path:
        return loaded
    if str(BENCHMARKS_DIR) not in sys.path:
        sys.path.insert(0, str(BENCHMARKS_DIR))
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or not path.is_file():
        raise FileNotFoundError(f"{path}: no such benchmark script")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[name]
        raise
    return module
