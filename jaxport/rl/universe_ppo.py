"""PPO for the universe allocator: the public names of :mod:`jaxport.rl.universe.ppo` under their
historical module path (pipeline configs and callers import them from here)."""

from jaxport.rl.universe.ppo import *  # noqa: F403
from jaxport.rl.universe.ppo import __all__  # noqa: F401
