"""Optional adapter to Datadog's real Toto (package ``toto-ts``) from a LOCAL checkpoint directory.

Nothing is ever downloaded: ``checkpoint_dir`` must hold ``model.safetensors`` (+ ``config.json``) as
published for ``Datadog/Toto-Open-Base-1.0``.  ``toto-ts`` 0.2.0 pins ``torch==2.7.0`` and pulls in
gluonts, transformers, lightning, datasets, boto3 ..., so it is NOT a jaxport dependency and is not
installed in the project environment; without it :class:`TotoAdapter` raises ImportError naming the
package.  (This module imports torch lazily, only inside the adapter.)

The adapter feeds Toto each target column's raw price series over the last ``context`` days (as the
original did), draws ``num_samples`` sample paths ``horizon`` days ahead, and converts them to the
scale-free convention of :mod:`jaxport.forecast.toto_features`: mean and std of
``log(col[t+h] / close[t])``.  Use it as the ``model`` of :func:`jaxport.forecast.features`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from jaxport.data.errors import DataError
from jaxport.data.market import MarketData

INSTALL_HINT = (
    "the real-Toto adapter needs the optional `toto-ts` package (and its torch==2.7 / gluonts / "
    "transformers stack), which is not installed; use the jaxport forecaster or model=None instead"
)


def toto_available() -> bool:
    try:
        import toto.inference.forecaster  # noqa: F401
        import toto.model.toto  # noqa: F401
    except Exception:
        return False
    return True


class TotoAdapter:
    """Real Toto as a feature model: ``forecast_mean_std(market, targets=, horizon=)``.

    checkpoint_dir: local directory with ``model.safetensors`` (+ ``config.json``).
    context: days of history per forecast (window ends at day t, inclusive).
    """

    def __init__(
        self,
        checkpoint_dir,
        *,
        context: int = 128,
        num_samples: int = 64,
        batch_size: int = 64,
        device: str = "cpu",
        model=None,
    ):
        try:
            from toto.data.util.dataset import MaskedTimeseries
            from toto.inference.forecaster import TotoForecaster
            from toto.model.toto import Toto
            import torch
        except ImportError as exc:
            raise ImportError(f"{INSTALL_HINT} ({exc})") from exc
        self._torch, self._masked = torch, MaskedTimeseries
        if model is None:  # ``model`` lets tests pass a small randomly initialised Toto
            path = Path(checkpoint_dir)
            if not (path / "model.safetensors").is_file():
                raise DataError(f"--toto-checkpoint {path}: no model.safetensors in this directory (nothing is downloaded)")
            model = Toto.load_from_checkpoint(str(path), map_location=device)
        self.model = model
        self.forecaster = TotoForecaster(model.model)
        self.context = int(context)
        self.num_samples = int(num_samples)
        self.batch_size = int(batch_size)
        self.device = device

    def _forecast_windows(self, windows: np.ndarray, horizon: int) -> np.ndarray:
        """``windows [B, C]`` prices -> samples ``[B, H, S]``."""
        torch = self._torch
        B, C = windows.shape
        series = torch.as_tensor(windows[:, None, :], dtype=torch.float32, device=self.device)
        inputs = self._masked(
            series=series,
            padding_mask=torch.ones_like(series, dtype=torch.bool),
            id_mask=torch.zeros_like(series, dtype=torch.int),
            timestamp_seconds=torch.zeros_like(series, dtype=torch.int),
            time_interval_seconds=torch.full((B, 1), 86400, dtype=torch.int, device=self.device),
        )
        with torch.inference_mode():
            fc = self.forecaster.forecast(inputs, prediction_length=horizon, num_samples=self.num_samples,
                                          samples_per_batch=self.num_samples)
        return fc.samples[:, 0].float().cpu().numpy()

    def forecast_mean_std(self, market: MarketData, *, targets: Sequence[str], horizon: int):
        """(mean, std) ``[T, N, K, H]`` of ``log(col[t+h]/close[t])`` and the first valid row."""
        T, N, C = market.num_days, market.num_symbols, self.context
        mean = np.zeros((T, N, len(targets), horizon), np.float32)
        std = np.zeros_like(mean)
        ends = np.arange(C, T)
        for k, col in enumerate(targets):
            prices = market.field(col)
            for n in range(N):
                for a in range(0, ends.size, self.batch_size):
                    t = ends[a : a + self.batch_size]
                    win = np.stack([prices[i - C + 1 : i + 1, n] for i in t])
                    samples = self._forecast_windows(win, horizon)  # [B, H, S]
                    logret = np.log(np.clip(samples, 1e-12, None) / market.close[t, n][:, None, None])
                    mean[t, n, k] = logret.mean(-1)
                    std[t, n, k] = logret.std(-1)
        return mean, std, C
