"""parts-jax: a JAX/Haiku implementation of PARTS (Zoran, Kabra, Lerchner, Rezende 2021)."""
from parts_jax.config import ConfigError, get_model_config, validate_model_config
from parts_jax.model import PARTS, build_model

__all__ = ["PARTS", "build_model", "get_model_config", "validate_model_config", "ConfigError"]
