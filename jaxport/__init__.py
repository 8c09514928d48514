"""jaxport: JAX toolkit for portfolio-allocation agents on equity data.

Layers, lowest first: ``data`` -> ``features`` -> ``env`` -> ``forecast``, ``rl`` -> ``eval`` ->
``pipeline``/``cli``. Each imports only from below; the core never imports torch.
"""

__version__ = "0.1.0"
