"""hpprompt: prompt optimisation for frozen models in JAX/Flax."""
__version__ = "0.1.0"
