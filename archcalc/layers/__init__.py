"""Layer types and merge types, one class each, registered by their spec name."""
from . import conv, norm, pool, simple  # noqa: F401  (registration)
from .base import REGISTRY, Field, LayerType, Shape, is_weight_layer, known_as, layer_type
from .merge import MERGES, MergeType, merge_type
from .rf import GLOBAL_RF, RF, merge_rf

# Registered when a spec first names one of their types (or every type is listed): a CNN never loads them.
REGISTRY.later += [f"{__name__}.{module}" for module in ("channels", "measured", "tokens", "window")]

__all__ = ["GLOBAL_RF", "MERGES", "REGISTRY", "RF", "Field", "LayerType", "MergeType", "Shape", "is_weight_layer",
           "known_as", "layer_type", "merge_rf", "merge_type"]
