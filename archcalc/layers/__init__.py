"""Layer types and merge types, one class each, registered by their spec name."""
from . import channels, conv, measured, norm, pool, simple, tokens, window  # noqa: F401  (registration)
from .base import REGISTRY, Field, LayerType, Shape, is_weight_layer, known_as, layer_type
from .merge import MERGES, MergeType, merge_type
from .rf import GLOBAL_RF, RF, merge_rf

__all__ = ["GLOBAL_RF", "MERGES", "REGISTRY", "RF", "Field", "LayerType", "MergeType", "Shape", "is_weight_layer",
           "known_as", "layer_type", "merge_rf", "merge_type"]
