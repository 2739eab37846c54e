"""frontier-jax: a vectorized LLM inference serving simulator in JAX.

Times are seconds (float64) everywhere; x64 is switched on at import because
float32 clocks lose precision over long simulated horizons.
"""

import jax

jax.config.update("jax_enable_x64", True)

__version__ = "0.1.0"
