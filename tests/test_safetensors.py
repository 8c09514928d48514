"""torch_compat.serialization / models.load_exported: ``.safetensors`` beside or instead of ``.pt``.

Every exported model kind (PPO actor-critic, gradient MLP allocator, patch-transformer forecaster)
is exported from freshly initialised, perturbed Flax parameters, written with ``save_exported``,
read back WITHOUT pickle (``torch.load`` is patched to raise) and compared with the Flax outputs
to 1e-5 (float32 both sides; measured differences ~1e-6, see tests/test_export.py).
"""

from __future__ import annotations

import functools
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file

from helpers import perturb_tree, ppo_params_and_norm
from jaxport.env import PortfolioEnv
from jaxport.errors import ConfigError
from jaxport.forecast import ForecasterConfig, init_params
from jaxport.forecast.model import predict_normalised
from jaxport.rl import GradientConfig, PPOConfig, make_network
from jaxport.rl.codec import make_policy
from jaxport.rl.gradient import make_policy_network
from torch_compat.export import export_forecaster, export_policy
from torch_compat.models import ARCH_METADATA_KEY, build_model, load_exported
from torch_compat.serialization import EXPORT_FORMATS, save_exported

TOL = dict(rtol=1e-5, atol=1e-5)
NUM = 64
ENV = PortfolioEnv(2, 3)
OBS = ENV.obs_dim


@functools.lru_cache(maxsize=None)
def _ppo():
    cfg = PPOConfig(hidden_sizes=(16, 8), activation="tanh", leverage_cap=1.5)
    params, norm = ppo_params_and_norm(cfg, ENV.num_assets, OBS, seed=0, count=10.0)
    policy = make_policy("ppo", cfg, ENV, params=params, obs_norm=norm)
    x = np.random.default_rng(2).normal(0.0, 2.0, (NUM, OBS)).astype(np.float32)
    mean, _, value = jax.jit(make_network(cfg, ENV.num_assets).apply)(params, jnp.asarray(x))
    want = {"act": np.asarray(policy.act(x)), "mean": np.asarray(mean), "value": np.asarray(value)}

    def got(model, xt):
        m, _, v = model(xt)
        return {"act": model.act(xt), "mean": m, "value": v}

    return export_policy(policy), x, want, got


@functools.lru_cache(maxsize=None)
def _mlp():
    cfg = GradientConfig(policy="mlp", hidden_sizes=(12, 12), leverage_cap=1.5)
    net = make_policy_network(cfg, ENV)
    params = perturb_tree(jax.jit(net.init)(jax.random.PRNGKey(1), jnp.zeros(OBS)), 2)
    x = np.random.default_rng(3).normal(0.0, 2.0, (NUM, OBS)).astype(np.float32)
    want = {"act": np.asarray(jax.jit(net.apply)(params, jnp.asarray(x)))}
    return (
        export_policy(make_policy("gradient_mlp", cfg, ENV, params=params)),
        x,
        want,
        lambda model, xt: {"act": model(xt)},
    )


@functools.lru_cache(maxsize=None)
def _forecaster():
    cfg = ForecasterConfig(
        context=16,
        patch=4,
        d_model=16,
        num_layers=2,
        num_heads=2,
        mlp_ratio=2,
        horizon=3,
        targets=("close", "high"),
        dropout=0.0,
    )
    params = perturb_tree(init_params(cfg, jax.random.PRNGKey(0)), 3, scale=0.2)
    x = np.random.default_rng(4).normal(size=(NUM, cfg.context, 6)).astype(np.float32)
    loc, scale, dof = jax.jit(predict_normalised, static_argnums=1)(params, cfg, jnp.asarray(x))
    want = {"loc": np.asarray(loc), "scale": np.asarray(scale), "dof": np.asarray(dof)}

    def got(model, xt):
        return dict(zip(("loc", "scale", "dof"), model(xt)))

    return export_forecaster(params, cfg), x, want, got


KINDS = {"actor_critic": _ppo, "mlp_allocator": _mlp, "patch_transformer_forecaster": _forecaster}


@pytest.fixture
def no_pickle(monkeypatch):
    """Any torch.load (pickle) during the test is an error."""

    def refuse(*args, **kwargs):
        raise AssertionError("torch.load called: safetensors loading must not unpickle")

    monkeypatch.setattr(torch, "load", refuse)


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_safetensors_round_trip_matches_flax(kind, tmp_path, no_pickle):
    (sd, arch), x, want, got = KINDS[kind]()
    assert arch["kind"] == kind
    files = save_exported(tmp_path / kind, sd, arch, format="safetensors")
    assert [f.name for f in files] == [f"{kind}.safetensors"]
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        f"{kind}.safetensors"
    ]  # no temp files left
    path = files[0]
    with safe_open(str(path), framework="pt") as fh:
        meta = fh.metadata()
        assert set(fh.keys()) == set(sd)
    assert json.loads(meta[ARCH_METADATA_KEY])["config"] == json.loads(json.dumps(arch["config"]))
    # the documented plain-safetensors path: load_file + load_state_dict(strict=True)
    tensors = load_file(str(path))
    for key, value in sd.items():
        assert tensors[key].dtype == value.dtype and torch.equal(tensors[key], value)
    plain = build_model(json.loads(meta[ARCH_METADATA_KEY]))
    plain.load_state_dict(tensors, strict=True)
    # and load_exported
    loaded = load_exported(path)
    assert loaded.arch["kind"] == kind and not loaded.training
    xt = torch.from_numpy(x)
    with torch.no_grad():
        for model in (plain.eval(), loaded):
            out = got(model, xt)
            for name, w in want.items():
                np.testing.assert_allclose(out[name].numpy(), w, **TOL, err_msg=f"{kind}: {name}")
    assert max(np.abs(w).max() for w in want.values()) > 0.1  # not a trivially flat model


def test_both_formats_hold_the_same_tensors(tmp_path):
    (sd, arch), x, _, got = _ppo()
    files = save_exported(tmp_path / "policy", sd, arch)  # default: both
    assert sorted(f.name for f in files) == ["policy.json", "policy.pt", "policy.safetensors"]
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "policy.json",
        "policy.pt",
        "policy.safetensors",
    ]
    from_pt = load_exported(tmp_path / "policy.pt")
    from_st = load_exported(tmp_path / "policy.safetensors")
    assert from_pt.arch == from_st.arch == json.loads((tmp_path / "policy.json").read_text())
    for (k1, v1), (k2, v2) in zip(from_pt.state_dict().items(), from_st.state_dict().items()):
        assert k1 == k2 and torch.equal(v1, v2)
    # a bare stem prefers the pickle-free file
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(torch, "load", None)  # fails if called
        assert load_exported(tmp_path / "policy").arch == from_st.arch
        assert load_exported(tmp_path / "policy.json").arch == from_st.arch
    pt_only = save_exported(tmp_path / "pt_only" / "p", sd, arch, format="pt")
    assert sorted(f.name for f in pt_only) == ["p.json", "p.pt"]
    with pytest.raises(ConfigError, match="format"):
        save_exported(tmp_path / "x", sd, arch, format="onnx")
    assert EXPORT_FORMATS == ("both", "safetensors", "pt")


def test_load_exported_errors(tmp_path):
    (sd, arch), *_ = _mlp()
    with pytest.raises(FileNotFoundError):
        load_exported(tmp_path / "missing.safetensors")
    from safetensors.torch import save_file

    save_file({k: v.contiguous() for k, v in sd.items()}, str(tmp_path / "bare.safetensors"))
    with pytest.raises(ValueError, match=ARCH_METADATA_KEY):
        load_exported(tmp_path / "bare.safetensors")
    (tmp_path / "bare.json").write_text(json.dumps(arch))  # a sibling .json serves as the arch
    assert load_exported(tmp_path / "bare.safetensors").arch["kind"] == "mlp_allocator"


def test_writes_are_atomic(tmp_path, monkeypatch):
    (sd, arch), *_ = _mlp()
    path = save_exported(tmp_path / "m.safetensors", sd, arch, format="safetensors")[0]
    assert path == tmp_path / "m.safetensors"  # a stem with the suffix is accepted
    before = path.read_bytes()
    import safetensors.torch as st

    def broken(tensors, filename, metadata=None):
        with open(filename, "wb") as fh:
            fh.write(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(st, "save_file", broken)
    with pytest.raises(OSError, match="disk full"):
        save_exported(tmp_path / "m", {k: v + 1 for k, v in sd.items()}, arch, format="safetensors")
    assert path.read_bytes() == before  # the old model is intact
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.safetensors"]  # no temporary left
