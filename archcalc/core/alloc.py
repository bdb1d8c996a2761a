"""The calculator builds large trees of immutable values (a network's nodes, its rows, the cells
of its table) that hold no reference cycles. Python's cyclic garbage collector walks every live
object again each time it collects the oldest generation, so as such a tree grows the walks grow
with it, and a 100,000-layer network spends a third of its time there. `paused_gc` switches the
collector off while such a tree is built; what an error leaves behind is collected once it is on
again."""
from __future__ import annotations

import gc

# archcalc/__init__.py imports this module first, to pause the collector for the rest: it imports nothing more
# at its top (functools and typing load after the pause, with the modules that need them)
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Callable, TypeVar

    F = TypeVar("F", bound=Callable)

# record(Layer, fields): a named tuple made without the Python frame of its generated __new__, for the
# records made once per node (a node of a block's copy, a node's sums); the fields are given in order, all of them.
record = tuple.__new__


def pause_collector() -> bool:
    """Switches the collector off while a module imports; whether it was on, for `resume_collector`.
    Importing archcalc (and the command line, click with it) makes tens of thousands of objects that
    live as long as the process and hold nothing to collect: a collection would only walk them."""
    collecting = gc.isenabled()
    gc.disable()
    return collecting


def resume_collector(collecting: bool) -> None:
    """What was made while paused joins the oldest generation unwalked (frozen, then thawed: nothing is
    left out of later collections), so that switching the collector on starts no walk of it."""
    if not gc.get_freeze_count():  # thawing would also thaw what a caller froze for itself (a pre-fork server)
        gc.freeze()
        gc.unfreeze()
    if collecting:
        gc.enable()


def paused_gc(function: F) -> F:
    from functools import wraps

    @wraps(function)
    def paused(*args, **kwargs):
        if not gc.isenabled():  # already paused by a caller (or by the program)
            return function(*args, **kwargs)
        gc.disable()
        try:
            return function(*args, **kwargs)
        finally:
            # Not resume_collector: what a caller froze can only be told by gc.get_freeze_count(), which walks
            # every frozen object (the program's imports: 5% of `archcalc table vgg16` when asked at each call).
            gc.enable()
    return paused  # type: ignore[return-value]
