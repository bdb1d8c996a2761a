"""archcalc: what a convolutional network costs before you run it.

    >>> import archcalc
    >>> result = archcalc.analyze(archcalc.load("vgg16"))
    >>> result.totals.params
    138357544
"""
from .calc import Analysis, Row, Totals, analyze
from .errors import SpecError
from .spec import Network, load, zoo_index

__all__ = ["Analysis", "Network", "Row", "SpecError", "Totals", "analyze", "load", "zoo_index"]
__version__ = "0.1.0"
