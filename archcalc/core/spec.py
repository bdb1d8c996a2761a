"""Specs: JSON files of network families, resolved into trees of frozen nodes.

A file holds one network, or a family with `variants` that differ in `params` only.
Nodes are layers (`type`), merges of branches (`type`: concat, add, mul), named block
instances (`block`) and sequences (`layers`); any node may carry `name`, `when`,
`repeat` (with `as` and `index`) and `comment`, and `from`: the earlier nodes of its
sequence whose outputs it takes (a graph that is not series-parallel), checked here.
Strings where numbers or booleans are expected are expressions, evaluated by
archcalc.expr, never by Python.
"""
import errno
import functools
import json
import os
import re
from types import MappingProxyType
from typing import (
    TYPE_CHECKING,
    Any,
    Callable,
    Iterator,
    Mapping,
    NamedTuple,
    Sequence,
    TypeGuard,
    Union,
)

from .. import fmt
from ..budget import Budget, current, use
from ..errors import SpecError, suggest
from ..files import split_name
from ..kinds import Boolean, FileName, Integer, Object, Shape, Text, quoted
from ..layers import REGISTRY, known_as
from ..layers.base import LayerType
from .alloc import paused_gc, record
from .expr import evaluate, names
from .figures import Expect
from .keys import (
    BLOCK,
    BLOCK_USE,
    DOCUMENT,
    MERGES,
    SEQUENCE,
    TEMPLATES,
    TEXTS,
    VARIANT,
    check_expect_value,
    check_keys,
    expect_keys,
    layer_keys,
    merge_keys,
)
from .reading import read_json

if TYPE_CHECKING:
    from pathlib import Path

# The calculator's records (nodes, rows, totals, keys, figures) are named tuples, immutable as a
# frozen dataclass is. A network is made of many nodes, and a frozen dataclass's __init__ sets each
# field through object.__setattr__ (several times as slow); and every dataclass compiles its
# methods from source when its module is imported: the sixteen of them were a quarter of
# `archcalc table vgg16`'s instructions. (The reports' and importers' records stay dataclasses.)

class Layer(NamedTuple):
    path: str
    type: str
    attrs: Mapping[str, Any]
    where: str
    shares: str | None = None  # the path of an earlier layer whose parameters this one uses
    inputs: tuple[str, ...] = ()  # `from`: the earlier nodes of its sequence it takes, by name; () the previous one


class Group(NamedTuple):
    path: str
    kind: str  # sequence, concat, add or mul
    label: str  # what a table shows as its type: the block name or the kind
    children: Sequence["Node"]  # a sequence's nodes, or a merge's branches (none where it joins its `inputs`)
    where: str
    inputs: tuple[str, ...] = ()  # `from`, as a Layer's; a merge without branches joins these
    graph: bool = False  # a sequence some of whose nodes name what they take (`from`): walked as a graph
    # What this group is a copy of (a block's expansion used again at another path, or a group inside
    # one): equal origins hold equal nodes, so analyze counts them once for each input shape.
    origin: Any = None


Node = Union[Layer, Group]


class Network(NamedTuple):
    name: str
    family: str
    file: str
    title: str
    input: tuple[int, ...]
    root: Group
    expect: tuple[Expect, ...] = ()
    meta: Mapping[str, Any] = MappingProxyType({})

    def with_input(self, dims: Sequence[int] | None) -> tuple[int, ...]:
        """The input shape with `dims` in place, completed by the spec's own rank.

        An image spec (CxHxW) takes CxHxW, HxW (its own channels) or N (NxN); a flat spec (F)
        takes N features; an HxW spec takes HxW or N. None keeps the spec's input.
        """
        if dims is None:
            return self.input
        dims = tuple(dims)
        if not dims or any(isinstance(d, bool) or not isinstance(d, int) or d < 1 for d in dims):
            raise SpecError(f"input {dims!r}: sizes are positive integers", file=self.file)
        rank = len(self.input)
        if len(dims) == rank:
            _check_channel_order(dims, self.input, self.file)
            return dims
        if len(dims) == 1 and rank > 1:
            return (*self.input[:rank - 2], dims[0], dims[0])
        if len(dims) == 2 and rank == 3:
            return (self.input[0], *dims)
        accepted = {1: "N (features)", 2: "HxW or N", 3: "CxHxW, HxW or N"}[min(rank, 3)]
        raise SpecError(
            f"input {fmt.shape(dims)} does not fit the spec's input {fmt.shape(self.input)}: give {accepted}",
            file=self.file,
        )


IMAGE_CHANNELS = (1, 3)


def looks_channels_last(shape: tuple[int, ...]) -> bool:
    """An image shape read as HxWxC: 1 or 3 last, and not first."""
    return len(shape) == 3 and shape[-1] in IMAGE_CHANNELS and shape[0] not in IMAGE_CHANNELS


def _check_channel_order(dims: tuple[int, ...], spec_input: tuple[int, ...], file: str) -> None:
    """Refuse an image given channels last (Keras' HxWxC) to a spec that takes 1 or 3 channels first."""
    if spec_input[0] in IMAGE_CHANNELS and not looks_channels_last(spec_input) and looks_channels_last(dims):
        likely = fmt.shape((dims[-1], *dims[:-1]))
        raise SpecError(f"input {fmt.shape(dims)} reads as {dims[0]} channels of {dims[1]}x{dims[2]} pixels; "
                        f"archcalc takes channels first (CxHxW), the spec {fmt.shape(spec_input)}: "
                        f"--input {likely}?", file=file)


# ---- files and the zoo ---------------------------------------------------------------

# Paths here are strings: pathlib (with the urllib and ipaddress it imports) was a tenth of
# `archcalc table vgg16`'s start-up. It loads for a spec file the user names (see _load).
_PACKAGE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def zoo_dir() -> str:
    packaged = os.path.join(_PACKAGE, "zoo")
    return packaged if os.path.isdir(packaged) else os.path.join(os.path.dirname(_PACKAGE), "specs")


def zoo_index() -> "dict[str, Path]":
    """Every built-in network name and the file that defines it."""
    from pathlib import Path

    return {name: Path(path) for name, path in _zoo_paths().items()}


def _zoo_paths() -> dict[str, str]:
    index: dict[str, str] = {}
    for path in _zoo_files():
        for name in variant_names(zoo_document(path), path):
            index[name] = path
    return index


def _version(path: str) -> tuple | None:
    """What changes when the file or folder at `path` is written (its change time cannot be set back)."""
    try:
        info = os.stat(path)
    except (OSError, ValueError):
        return None
    return info.st_ino, info.st_size, info.st_mtime_ns, info.st_ctime_ns


def _while_unchanged(cache: dict, path: str, make: Callable[[], Any]) -> Any:
    """`make()`, made again only when the file or folder at `path` has changed since (see _version)."""
    version = _version(path)
    cached = cache.get(path)
    if cached is None or cached[0] != version or version is None:
        cached = cache[path] = (version, make())
    return cached[1]


_ZOO_FILES: dict[str, tuple] = {}
_ZOO_DOCUMENTS: dict[str, tuple] = {}


def _zoo_files() -> list[str]:
    folder = os.fspath(zoo_dir())  # a file added or removed changes the folder
    return _while_unchanged(_ZOO_FILES, folder, lambda: [
        os.path.join(folder, name) for name in sorted(os.listdir(folder))
        if name.endswith(".json") and not name.startswith(".") and name != "schema.json"])


def zoo_document(path: str | os.PathLike) -> dict:
    """A zoo file's document, parsed once per process (again when the file changes). Never mutate it."""
    path = os.fspath(path)
    return _while_unchanged(_ZOO_DOCUMENTS, path, lambda: read_json(path))


def zoo_file(name: str) -> "Path | None":
    """The zoo file that defines `name`: first the files whose name begins the network's (vgg.json
    for vgg16), then the whole index."""
    from pathlib import Path

    path = _zoo_path(name)
    return None if path is None else Path(path)


def _zoo_path(name: str) -> str | None:
    stems = {path: split_name(path)[0] for path in _zoo_files()}
    likely = sorted((p for p, stem in stems.items() if name.startswith(stem)), key=lambda p: -len(stems[p]))
    for path in likely:
        if name in variant_names(zoo_document(path), path):
            return path
    return _zoo_paths().get(name)


def variant_names(document: dict, path: str | os.PathLike) -> list[str]:
    variants = document.get("variants")
    name = document.get("name")
    return list(variants) if isinstance(variants, dict) else [name if isinstance(name, str) and name else split_name(path)[0]]


def _exists(path: str | os.PathLike) -> bool:
    """Whether something is at `path`; True when the OS cannot tell (the read names the reason)."""
    try:
        os.stat(path)
    except OSError as exc:  # pathlib's exists() says False for these, and raises for the others
        return exc.errno not in (errno.ENOENT, errno.ENOTDIR, errno.EBADF, errno.ELOOP)
    except ValueError:
        return True
    return True


@paused_gc
def load(target: "str | Path | Mapping[str, Any]", variant: str | None = None, *, budget: Budget | None = None) -> Network:
    """A network from a zoo name, a spec file, FILE:VARIANT, or a spec document given as a dict.

        >>> load("resnet50")                                  # the zoo
        >>> load("my_net.json"), load("family.json:small")   # files
        >>> load({"input": [3, 32, 32], "layers": [...]})     # a dict, as a spec file holds it

    `variant` names the network of a family (a dict's, or a file's); `budget`
    (archcalc.budget.Budget) raises or lowers the limits the spec is read and expanded under.
    Raises SpecError (bad input, with the file and the JSON path) when the spec cannot be read or resolved.
    """
    with use(budget):
        if isinstance(target, Mapping):
            return load_document(target, variant)
        return _load(str(target), variant)


def load_every(target: str) -> list[Network]:
    """The network `target` names (as `load` reads it), or every variant of a family file named without one."""
    if target.endswith(".json") and _exists(target):
        document = read_json(target)
        if isinstance(document, dict) and len(variant_names(document, target)) > 1:
            return [load_document(document, name, target) for name in variant_names(document, target)]
    return [load(target)]


def _load(target: str, variant: str | None = None) -> Network:
    if target.replace("_", "").isalnum() and not _exists(target):  # a name, which pathlib would leave as it is
        return _zoo_named(target)
    from pathlib import Path  # a file the user names, written as pathlib writes it

    path = Path(target)
    if not _exists(path) and ":" in target and target.rsplit(":", 1)[0].endswith(".json"):
        file_part, variant = target.rsplit(":", 1)
        path = Path(file_part)
    if path.suffix != ".json" and not _exists(path) and os.sep not in target and "/" not in target:
        return _zoo_named(target)  # a path with a folder in it names a file, found or not
    return load_document(read_json(path), variant, str(path))


def _zoo_named(name: str) -> Network:
    found = _zoo_path(name)
    if found is None:
        raise SpecError(f"unknown network {quoted(name)}{suggest(name, list(_zoo_paths()))}; "
                        "`archcalc list` shows the zoo")
    return _zoo_network(name, found)


_ZOO_NETWORKS: dict[tuple, tuple[dict, Network]] = {}  # the document it was resolved from, and it
_ZOO_MEMOS: dict[tuple, tuple[dict, "_Memo"]] = {}  # by file and budget: the document, what its variants made


def _zoo_network(name: str, path: str) -> Network:
    """A zoo network, resolved once per process for each version of its file and budget (a Network is immutable)."""
    document = zoo_document(path)
    key = (name, path, current())
    cached = _ZOO_NETWORKS.get(key)
    if cached is None or cached[0] is not document:
        memo = _ZOO_MEMOS.get(key[1:])
        if memo is None or memo[0] is not document:  # the variants of one file share what they expand
            memo = _ZOO_MEMOS[key[1:]] = (document, _Memo())
        cached = _ZOO_NETWORKS[key] = (document, load_document(document, name, path, memo=memo[1]))
    return cached[1]


def load_document(document: Mapping[str, Any], variant: str | None = None, file: str | None = None, *,
                  memo: "_Memo | None" = None) -> Network:
    """The network of a spec document (a dict, as a spec file holds it); `variant` picks a family's network.

    `memo`: what resolving other variants of this same document made (see _Memo)."""
    where = file or "<dict>"
    if file is None:  # a document from Python: JSON values only (tuples become lists), checked like a file
        try:
            document = json.loads(json.dumps(document))
        except (TypeError, ValueError, RecursionError) as exc:
            raise SpecError(f"$: not a JSON document: {str(exc)[:80]}", file=where) from None
    if not isinstance(document, dict):
        raise SpecError("$: a spec is a JSON object", file=where)
    names = variant_names(document, where)
    if not names:
        raise SpecError("$.variants: a family needs at least one variant, got {}", file=where)
    if variant is None:
        if len(names) != 1:
            how = f"{where}:VARIANT" if file else "load(document, VARIANT)"
            listed = ", ".join(str(name)[:40] for name in names[:20]) + (", ..." if len(names) > 20 else "")
            raise SpecError(f"the file holds {len(names)} variants; name one as {how} ({listed})", file=where)
        variant = names[0]
    if variant not in names:
        import difflib

        nearest = difflib.get_close_matches(variant, names, n=len(names), cutoff=0) + names
        listed = ", ".join(str(name)[:40] for name in list(dict.fromkeys(nearest))[:20])
        raise SpecError(f"no variant {quoted(variant)}{suggest(variant, names)}; the file has {listed}"
                        + (f" and {len(names) - 20:,} more" if len(names) > 20 else ""), file=where)
    try:
        return resolve(document, variant, where, memo=memo)
    except SpecError as exc:
        raise exc.located(file=where) from None


# ---- resolution ----------------------------------------------------------------------

@paused_gc
def resolve(document: dict, variant: str, file: str, *, budget: Budget | None = None,
            memo: "_Memo | None" = None) -> Network:
    """The network `variant` of a spec document (a family's variant, or the document's one network)."""
    with use(budget):
        return _resolve(document, variant, file, memo)


def _resolve(document: dict, variant: str, file: str, memo: "_Memo | None") -> Network:
    check_keys(document, DOCUMENT, "$")
    variants = document.get("variants")
    chosen, where = (variants[variant], f"$.variants.{variant}") if variants else (document, "$")
    # the network's name becomes a file name (its report page): it must stay one file name
    FileName().check(variant, "$.variants" if variants else ("$.name" if "name" in document else file))
    if chosen is not document:
        Object().check(chosen, where)
        check_keys(chosen, VARIANT, where)
    env = _params(document, chosen, where)
    shape = Shape().check(chosen.get("input", document.get("input")), f"{where}.input")
    context = _Context(document.get("blocks", {}), memo)
    children, graph = context.items(document["layers"], env, "", "$.layers")
    root = Group("", "sequence", "network", children, "$", (), graph)
    meta = {**document.get("meta", {}), **chosen.get("meta", {})} if chosen is not document else document.get("meta", {})
    expects = list(_expects(document.get("expect", []), "$.expect"))
    if chosen is not document:  # the family's figures hold for every variant, then the variant's own
        expects += _expects(chosen.get("expect", []), f"{where}.expect")
    return Network(
        name=variant,
        family=str(document.get("name") or split_name(file)[0]),
        file=file,
        title=str(chosen.get("title") or document.get("title") or variant),
        input=shape,
        root=root,
        expect=tuple(expects),
        meta=MappingProxyType(dict(meta)),
    )


def _params(document: dict, chosen: dict, where: str) -> dict[str, Any]:
    defaults = document.get("params", {})
    overrides = chosen.get("params", {}) if chosen is not document else {}
    for key in overrides:
        if key not in defaults:
            raise SpecError(f"{where}.params: {quoted(key)} is not a family parameter{suggest(key, list(defaults))}")
    env: dict[str, Any] = {}
    for key, default in defaults.items():
        raw = overrides.get(key, default)
        try:
            env[key] = evaluate(raw, env) if isinstance(raw, str) else raw
        except SpecError as exc:
            raise SpecError(f"{where if key in overrides else '$'}.params.{key}: {exc.message}") from None
    return env


def _expects(raw: list, where: str) -> Iterator[Expect]:
    for i, item in enumerate(raw):
        here = f"{where}[{i}]"
        Object().check(item, here)
        check_keys(item, expect_keys(), here)
        check_expect_value(item, here)
        yield Expect.from_item(item)


_NOT_FIELDS = ("type", "name", "names", "when", "repeat", "as", "index", "shares", "from")  # keys of a layer item that are no field
_UNSET = object()  # a name the environment does not hold
_NAME_FIELD = re.compile(r"\{([^{}]+)\}")
_NAME = re.compile(r"[A-Za-z0-9_-]+")  # torch's names: RegNet's `block1-0`
_COUNT = Integer(minimum=0)
_BOOLEAN = Boolean()
_CHECKED_ONCE = (int, bool, str)  # the types of field values whose check is kept (a float's sign of zero is not)


def _keyed(what: Any, values: list) -> tuple:
    """A memo's key: `what`, the types of the values of the names it reads (1, 1.0 and true apart) and the values.
    Unhashable where a value is (a list): the memo's reader then makes the node anew (_memo_get)."""
    return (what, *map(type, values), *values)


def _memo_get(memo: dict, key: tuple | None) -> tuple[Any, tuple | None]:
    """What `memo` holds for `key` (None: nothing), and the key, None where it cannot be one (it holds a list)."""
    if key is None:
        return None, None
    try:
        return memo.get(key), key
    except TypeError:
        return None, None


class _Expanded:
    """A block's nodes as one use made them, at `path`; what they took of the budget (`nodes`, `steps`, `depth`:
    levels below the use); `graph`: some of them name what they take."""

    __slots__ = ("path", "children", "graph", "nodes", "steps", "depth")

    def __init__(self, path: str, children: tuple[Node, ...], graph: bool, nodes: int, steps: int, depth: int):
        self.path, self.children, self.graph, self.nodes, self.steps, self.depth = path, children, graph, nodes, steps, depth


def _moved(node: Node, old: str, new: str) -> Node:
    """`node` with the path prefix `old` replaced by `new` (a block's nodes at another use)."""
    path = new + node.path[len(old):]
    if isinstance(node, Layer):  # a module called again moves with the module (an explicit `shares` stays put)
        shares = new + node.shares[len(old):] if CALL in node.path and node.shares else node.shares
        return record(Layer, (path, node.type, node.attrs, node.where, shares, node.inputs))
    return record(Group, (path, node.kind, node.label, Moved(node.children, old, new), node.where,
                          node.inputs, node.graph, node if node.origin is None else node.origin))


class Moved(Sequence):
    """A group's nodes moved to another path (_moved), made when first read: a copy of a block that analyze
    counts from the first use's sums (Group.origin) is never read, until its rows are."""

    __slots__ = ("_nodes", "_old", "_new", "_made")

    def __init__(self, nodes: Sequence[Node], old: str, new: str):
        self._nodes, self._old, self._new = nodes, old, new
        self._made: tuple[Node, ...] | None = None

    def _all(self) -> tuple[Node, ...]:
        if self._made is None:
            self._made = tuple([_moved(node, self._old, self._new) for node in self._nodes])
        return self._made

    def __len__(self) -> int:
        return len(self._nodes)

    def __getitem__(self, index):  # type: ignore[override]
        return self._all()[index]

    def __iter__(self) -> Iterator[Node]:
        return iter(self._all())

    def __eq__(self, other: object) -> bool:
        return isinstance(other, (tuple, Moved)) and self._all() == tuple(other)

    def __hash__(self) -> int:
        return hash(self._all())

    def __repr__(self) -> str:
        return repr(self._all())


class _Memo:
    """What expanding a document's items has made, by what each depends on (see _Context): it holds for
    every variant of that document under one budget, so a family's variants share it. The budget's
    counts are kept apart, per network (_Context)."""

    def __init__(self):
        self.checked: set[str] = set()  # blocks whose definition was checked
        self.attrs: dict[tuple, Mapping[str, Any]] = {}  # layer fields, shared where equal
        self.layers: dict[tuple, tuple[dict, str, Mapping[str, Any]]] = {}  # by layer_key
        # each layer item's content: its first item, the number that stands for it, the names it reads
        self.reads: dict[Any, tuple[dict, int, tuple[str, ...] | None]] = {}
        self.expanded: dict[tuple, _Expanded] = {}  # by _keyed: a block's name or a sequence's list, the values read
        self.reads_of_blocks: dict[str, tuple[str, ...] | None] = {}
        self.keys_checked: dict[tuple[int, int], dict] = {}  # (item, key table) checked, and the item (kept alive)
        self.item_keys: dict[int, tuple[dict, int, tuple[str, ...] | None]] = {}  # by item: what reads holds of it
        self.names_ok: set[str] = set()  # node names found to be letters, digits, underscores and hyphens
        self.checked_values: dict[tuple, Any] = {}  # (kind, type, value): what the kind's check made of it
        self.reads_of_lists: dict[int, tuple[list, tuple[str, ...] | None]] = {}  # by a list of items: it, its reads


class _Context:
    """One expansion: the blocks, what it has used of the budget so far, and what it has already made.

    A layer item's fields and a block's nodes depend only on the item (or block) and the values of the
    names it reads: both are made once for each such set of values and used again (a block at another
    path), which is what keeps a network of many equal blocks, or a generated spec, quick to read."""

    def __init__(self, blocks: dict, memo: "_Memo | None" = None):
        self.blocks = blocks
        self.budget = current()
        self.depth = 0
        self.nodes = 0  # layers and groups made
        self.steps = 0  # repeat iterations run (a `when` may leave one with no node)
        self.deepest = 0  # the deepest `depth` reached, while a block is expanded
        memo = memo or _Memo()
        self.checked, self.attrs, self.layers = memo.checked, memo.attrs, memo.layers
        self.reads, self.expanded, self.reads_of_blocks = memo.reads, memo.expanded, memo.reads_of_blocks
        self.keys_checked, self.item_keys, self.names_ok = memo.keys_checked, memo.item_keys, memo.names_ok
        self.reads_of_lists, self.checked_values = memo.reads_of_lists, memo.checked_values

    def check_keys(self, raw: dict, keys: Mapping[str, Any], where: str, owner: str = "") -> None:
        """check_keys, once for each item of the document and key table (a block's items at every use)."""
        key = (id(raw), id(keys))
        if self.keys_checked.get(key) is not raw:
            check_keys(raw, keys, where, owner)
            self.keys_checked[key] = raw

    def made(self, node: Node) -> Node:
        self.nodes += 1
        if self.nodes > self.budget.nodes:
            raise SpecError(f"{node.where}: the network grows past {self.budget.describe('nodes')} "
                            f"at {node.path.partition(chr(0))[0] or 'the root'}")  # a branch: at its merge
        return node

    def items(self, raw_items: list, env: Mapping[str, Any], prefix: str, where: str,
              scope: "_Scope | None" = None) -> tuple[tuple[Node, ...], bool]:
        """The nodes of a sequence, each with its own name, and whether some name what they take (`from`,
        checked). `scope`: the names its nodes are given among (a merge's branches share their merge's)."""
        scope = scope if scope is not None else _Scope(prefix)
        made: list[Node] = []
        graph = False
        for i, raw in enumerate(raw_items):
            for node in self.item(raw, env, scope, f"{where}[{i}]"):
                made.append(node)
                if node.inputs:
                    graph = True
        children = tuple(made)
        if graph:
            _check_sources(children)
        return children, graph

    def item(self, raw: Any, env: Mapping[str, Any], scope: "_Scope", where: str) -> list[Node]:
        """The nodes one spec item stands for: none (`when`), one, or a spliced `repeat`."""
        if not isinstance(raw, dict):
            Object().check(raw, where)
        if "when" in raw and not self.holds(raw["when"], env, where):
            return []
        if "repeat" in raw and "name" not in raw:
            return self.repeat(raw, env, scope, where)
        if raw.get("splice") is True and "layers" in raw:
            return self.spliced(raw, env, scope, where)
        if "name" in raw:
            name = self.name(raw.get("name"), env, where)
        else:  # a merge is named by its op, as torch names a functional call; any other node by its position
            kind = raw.get("type")
            name = kind if isinstance(kind, str) and kind in MERGES else str(scope.count)
        if name not in self.names_ok:
            if not _NAME.fullmatch(name):
                raise SpecError(f"{where}.name: {quoted(name)} may hold only letters, digits, underscores and hyphens")
            self.names_ok.add(name)
        path = f"{scope.prefix}.{name}" if scope.prefix else name
        if "repeat" in raw:
            inner = _Scope(path)
            children = tuple(self.repeat(raw, env, inner, where))
            graph = any(node.inputs for node in children)
            if graph:
                _check_sources(children)
            return [scope.named(self.made(Group(path, "sequence", "repeat", children, where, (), graph)))]
        return [scope.named(self.single(raw, env, path, where, scope))]

    def spliced(self, raw: dict, env: Mapping[str, Any], scope: "_Scope", where: str) -> list[Node]:
        """The nodes of a `layers` list with `splice`, made among the enclosing sequence's, numbered on."""
        self.check_keys(raw, SEQUENCE, where)
        for key in TEMPLATES:
            if key in raw:
                raise SpecError(f"{where}.{key}: a spliced sequence has no name and takes no `from` of its own: its "
                                "nodes join the enclosing sequence")
        made: list[Node] = []
        for k, item in enumerate(raw["layers"]):
            made.extend(self.item(item, env, scope, f"{where}.layers[{k}]"))
        return made

    def single(self, raw: dict, env: Mapping[str, Any], path: str, where: str, scope: "_Scope") -> Node:
        self.depth += 1
        if self.depth > self.deepest:
            self.deepest = self.depth
        if self.depth > self.budget.depth:
            raise SpecError(f"{where}: nodes nest deeper than {self.budget.describe('depth')} (a block that uses itself?)")
        try:
            node = self.node(raw, env, path, where, scope)
            if "from" in raw:
                node = node._replace(inputs=self.sources(raw["from"], env, where))
            return self.made(node)
        finally:
            self.depth -= 1

    def sources(self, raw: Any, env: Mapping[str, Any], where: str) -> tuple[str, ...]:
        """The names a `from` holds (its kind was checked with the node's keys), templates filled in."""
        if isinstance(raw, str):
            return (self.name(raw, env, where, "from"),)
        return tuple(self.name(name, env, f"{where}.from[{k}]", "") for k, name in enumerate(raw))

    def node(self, raw: dict, env: Mapping[str, Any], path: str, where: str, scope: "_Scope") -> Node:
        typed, used, listed = "type" in raw, "block" in raw, "layers" in raw
        if typed + used + listed != 1:
            kinds = [key for key in ("type", "block", "layers") if key in raw]
            raise SpecError(f"{where}: a node has exactly one of 'type', 'block' or 'layers' (found {kinds or 'none'})")
        if not listed and not isinstance(raw["type" if typed else "block"], str):
            Text().check(raw["type" if typed else "block"], f"{where}.{'type' if typed else 'block'}")
        if used:
            return self.block(raw, env, path, where)
        if listed:
            self.check_keys(raw, SEQUENCE, where)
            layers = raw["layers"]
            read = self.reads_of(layers)
            key = None if read is None else _keyed(id(layers), [env.get(n, _UNSET) for n in read])
            return self.expansion(key, layers, env, path, where, f"{where}.layers", "sequence")
        if raw["type"] in MERGES:
            return self.merge(raw, env, path, where, scope)
        return self.layer(raw, env, path, where)

    def repeat(self, raw: dict, env: Mapping[str, Any], scope: "_Scope", where: str) -> list[Node]:
        """One node per value; each is named by the `names` template, else by its position."""
        count = self.value(raw["repeat"], env, f"{where}.repeat")
        values = count if isinstance(count, list) else range(_COUNT.check(count, f"{where}.repeat"))
        if self.steps + len(values) > self.budget.nodes:
            raise SpecError(f"{where}.repeat: {len(values):,} repetitions"
                            f"{f' (after {self.steps:,} others)' if self.steps else ''} are over "
                            f"{self.budget.describe('nodes')}")
        self.steps += len(values)
        body = {k: v for k, v in raw.items() if k not in ("repeat", "as", "index", "name", "names", "when")}
        if "names" in raw:
            body["name"] = raw["names"]
        loop_variable = Text().check(raw.get("as", "i"), f"{where}.as")
        position = Text().check(raw["index"], f"{where}.index") if "index" in raw else None
        children: list[Node] = []
        for k, value in enumerate(values):
            inner = {**env, loop_variable: value}
            if position is not None:
                inner[position] = k
            children.extend(self.item(body, inner, scope, where))
        return children

    def block(self, raw: dict, env: Mapping[str, Any], path: str, where: str) -> Group:
        self.check_keys(raw, BLOCK_USE, where)
        name = raw["block"]
        if name not in self.blocks:
            raise SpecError(f"{where}.block: unknown block {quoted(name)}{suggest(name, list(self.blocks))}")
        definition = self.blocks[name]
        if name not in self.checked:
            Object().check(definition, f"$.blocks.{name}")
            check_keys(definition, BLOCK, f"$.blocks.{name}")
            self.checked.add(name)
        defaults = definition.get("args", {})
        given = raw.get("args", {})
        for key in given:
            if key not in defaults:
                raise SpecError(f"{where}.args: block {name!r} takes no argument {key!r}{suggest(key, list(defaults))}")
        scope = dict(env)
        for key, default in defaults.items():
            if key in given:
                scope[key] = self.value(given[key], env, f"{where}.args.{key}")
            elif default is None:
                raise SpecError(f"{where}.args: block {name!r} needs argument {key!r}")
            else:
                scope[key] = self.value(default, scope, f"$.blocks.{name}.args.{key}")
        read = self.block_reads(name)
        key = None if read is None else _keyed(name, [scope.get(n, _UNSET) for n in read])
        return self.expansion(key, definition["layers"], scope, path, where, f"$.blocks.{name}.layers", name)

    def expansion(self, key: tuple | None, layers: list, env: Mapping[str, Any], path: str, where: str,
                  layers_where: str, label: str) -> Group:
        """A sequence of `layers` (a block's, or a node's own), made once for each `key` (what they are and the
        values of the names they read; None: made each time) and moved to the paths of its later uses."""
        done, key = _memo_get(self.expanded, key)
        if done is not None and self.fits(done):
            self.nodes, self.steps = self.nodes + done.nodes, self.steps + done.steps
            return Group(path, "sequence", label, Moved(done.children, done.path, path), where, (), done.graph, done)
        nodes, steps, deepest = self.nodes, self.steps, self.deepest
        self.deepest = self.depth
        children, graph = self.items(layers, env, path, layers_where)
        expanded = None
        if key is not None:
            expanded = self.expanded[key] = _Expanded(path, children, graph, self.nodes - nodes, self.steps - steps,
                                                      self.deepest - self.depth)
        self.deepest = max(deepest, self.deepest)
        return Group(path, "sequence", label, children, where, (), graph, expanded)

    def fits(self, done: _Expanded) -> bool:
        """Whether an expansion made before fits what is left of the budget here (else it is made again,
        and says where it stops)."""
        return (self.nodes + done.nodes <= self.budget.nodes and self.steps + done.steps <= self.budget.nodes
                and self.depth + done.depth <= self.budget.depth)

    def block_reads(self, name: str) -> tuple[str, ...] | None:
        """The names a block's layers and its arguments' defaults read (nested blocks' too); None when one of its
        strings does not parse or it uses itself: then it is expanded each time."""
        if name not in self.reads_of_blocks:
            self.reads_of_blocks[name] = None  # while it is worked out: a block that uses itself is not kept
            definition = self.blocks[name]
            if not isinstance(definition, dict):  # a nested block not yet checked: its use says what is wrong
                return None
            defaults = definition.get("args", {})
            read = self.reads_of(definition.get("layers", []))
            found = _reads_in(list(defaults.values()) if isinstance(defaults, dict) else defaults,
                              self.budget.expression_depth)
            if read is not None and found is not None:
                self.reads_of_blocks[name] = tuple(sorted({*read, *found[0]}))
        return self.reads_of_blocks[name]

    def reads_of(self, layers: list) -> tuple[str, ...] | None:
        """The names the items of `layers` read, those of the blocks they use included; None as block_reads."""
        known = self.reads_of_lists.get(id(layers))
        if known is None or known[0] is not layers:
            read: tuple[str, ...] | None = None
            found = _reads_in(layers, self.budget.expression_depth)
            if found is not None:
                names, nested = found
                for other in nested:
                    more = self.block_reads(other) if other in self.blocks else None
                    if more is None:
                        break
                    names |= set(more)
                else:
                    read = tuple(sorted(names))
            known = self.reads_of_lists[id(layers)] = (layers, read)
        return known[1]

    def merge(self, raw: dict, env: Mapping[str, Any], path: str, where: str, scope: "_Scope") -> Group:
        """A merge: its row is at `path`; its branches add no part to their nodes' paths (they are named among
        the merge's neighbours, as the modules of a torch block are), so a branch is a module only when it is a
        named node."""
        self.check_keys(raw, merge_keys(), where)
        joined = raw.get("from")
        if isinstance(joined, list) and "branches" in raw:
            raise SpecError(f"{where}.from: a merge with branches takes one name in 'from' (the branches' input); "
                            "to join named nodes, leave out 'branches'")
        if isinstance(joined, list):
            return Group(path, raw["type"], raw["type"], (), where)  # its `inputs`: set by single()
        if "branches" not in raw:
            raise SpecError(f"{where}: {raw['type']} needs 'branches', or a list of the nodes it joins in 'from'")
        branches = raw["branches"]
        if len(branches) < 2:
            raise SpecError(f"{where}.branches: {raw['type']} needs at least two branches, got {len(branches)}")
        children = []
        for b, branch in enumerate(branches):
            here = f"{where}.branches[{b}]"
            if not isinstance(branch, list):
                branch = [branch]  # a single node
            nodes, graph = self.items(branch, env, scope.prefix, here, scope)
            children.append(self.made(Group(branch_key(path, b), "sequence", "branch", nodes, here, (), graph)))
        return Group(path, raw["type"], raw["type"], tuple(children), where)

    def layer(self, raw: dict, env: Mapping[str, Any], path: str, where: str) -> Layer:
        """A layer; its fields are checked once for each spec item and values of the names it reads."""
        made, key = _memo_get(self.layers, self.layer_key(raw, env))
        if made is None:
            made = (raw, raw["type"], self.fields(raw, env, where))
            if key is not None:
                self.layers[key] = made
        return Layer(path, made[1], made[2], where, raw.get("shares"))

    def layer_key(self, raw: dict, env: Mapping[str, Any]) -> tuple | None:
        """The item (a number standing for its content) and the values of every name its fields read (_keyed); None
        when an expression does not parse (then the fields are checked anew and say why)."""
        known = self.item_keys.get(id(raw))
        if known is None or known[0] is not raw:
            known = self.item_key(raw)
        read_names = known[2]
        return None if read_names is None else _keyed(known[1], [env.get(n, _UNSET) for n in read_names])

    def item_key(self, raw: dict) -> tuple[dict, int, tuple[str, ...] | None]:
        """(the item, the number its content stands for, the names its fields read), once for each item: equal
        items are one (a generated spec repeats a layer as text); types apart: 1, 1.0 and true."""
        try:
            content: Any = tuple((k, type(v), v) for k, v in raw.items())
            hash(content)
        except TypeError:  # a list value: the item itself
            content = id(raw)
        first = self.reads.get(content)
        if first is None:  # the entry holds the first such item: its id, the content's number, stays its own
            found = _reads_in({k: v for k, v in raw.items() if k not in _NOT_FIELDS}, self.budget.expression_depth)
            first = self.reads[content] = (raw, id(raw), None if found is None else tuple(sorted(found[0])))
        self.item_keys[id(raw)] = (raw, first[1], first[2])
        return self.item_keys[id(raw)]

    def fields(self, raw: dict, env: Mapping[str, Any], where: str) -> Mapping[str, Any]:
        kind = raw["type"]
        layer_type = REGISTRY.get(kind)
        if layer_type is None:
            known = sorted(REGISTRY) + list(MERGES)
            alias = known_as(kind)
            hint = f" (did you mean {alias!r}?)" if alias else suggest(kind, known)
            raise SpecError(f"{where}.type: unknown layer type {quoted(kind)}{hint}")
        self.check_keys(raw, _layer_keys(kind), where, owner=kind)
        attrs: dict[str, Any] = {}
        checked = self.checked_values
        for key, spec_field in layer_type.fields.items():
            if key in raw:
                given = raw[key]
                literal = spec_field.kind.literal(given, f"{where}.{key}", kind) if isinstance(given, str) else None
                value = literal if literal is not None else self.value(given, env, where, key)
            elif spec_field.default_from is not None:
                value = attrs[spec_field.default_from]
            else:
                value = spec_field.default
            if value is None and spec_field.default is None:
                attrs[key] = None
            elif type(value) in _CHECKED_ONCE:  # a kind's check depends on the value and the budget alone
                seen = (spec_field.kind, type(value), value)
                if seen not in checked:
                    checked[seen] = spec_field.kind.check(value, f"{where}.{key}")
                attrs[key] = checked[seen]
            else:
                attrs[key] = spec_field.kind.check(value, f"{where}.{key}")
        return self.shared(kind, attrs)

    def shared(self, kind: str, attrs: dict[str, Any]) -> Mapping[str, Any]:
        """Equal fields of one layer type are one mapping (a generated network repeats a few layers)."""
        try:
            key = (kind, *((k, type(v), v) for k, v in attrs.items()))  # 1 and 1.0 stay apart
            return self.attrs.setdefault(key, MappingProxyType(attrs))
        except TypeError:  # an unhashable value (a connection table): its own mapping
            return MappingProxyType(attrs)

    def name(self, template: Any, env: Mapping[str, Any], where: str, key: str = "name") -> str:
        """A name template with its {expressions} filled in; `key`: where it is in the item ('' for `where` itself)."""
        here = f"{where}.{key}" if key else where
        if not isinstance(template, str):
            Text().check(template, here)
        if "{" not in template:
            return template
        try:
            return _NAME_FIELD.sub(lambda m: str(evaluate(m.group(1), env)), template)
        except SpecError as exc:
            raise SpecError(f"{here}: {exc.message}") from None

    def holds(self, when: Any, env: Mapping[str, Any], where: str) -> bool:
        """Whether an item's `when` is true (a JSON boolean, or an expression that gives one)."""
        if when is True or when is False:
            return when
        here = f"{where}.when"
        _BOOLEAN.literal(when, here)  # refuses the text "true" and "false"
        return _BOOLEAN.check(self.value(when, env, here), here)

    def value(self, raw: Any, env: Mapping[str, Any], where: str, *parts: str) -> Any:
        """A raw value with every expression string in it evaluated (lists of them too); an error is at `where`
        and its `parts` (joined only then)."""
        if not isinstance(raw, (str, list)):
            return raw
        try:
            return evaluate(raw, env) if isinstance(raw, str) else _evaluated(raw, env)
        except SpecError as exc:
            raise SpecError(f"{'.'.join((where, *parts))}: {exc.message}") from None


def _reads_in(layers: Any, depth_limit: int) -> tuple[set[str], set[str]] | None:
    """The names spec items read (expressions, lists of them, name templates, nested blocks' arguments)
    and the blocks they use; None when a string does not parse."""
    read: set[str] = set()
    nested: set[str] = set()
    stack = [layers]
    while stack:
        value = stack.pop()
        if isinstance(value, list):
            stack += value
        elif isinstance(value, dict):
            for key, item in value.items():
                if key == "block":
                    if isinstance(item, str):
                        nested.add(item)
                elif key in TEMPLATES:
                    templates = [item] if isinstance(item, str) else item if isinstance(item, list) else []
                    stack += [field for t in templates if isinstance(t, str) for field in _NAME_FIELD.findall(t)]
                elif key not in TEXTS:
                    stack.append(item)
        elif isinstance(value, str):
            found = names(value, depth_limit)
            if found is None:
                return None
            read |= found
    return read, nested


class _Scope:
    """The names of a sequence's nodes, with those of its merges' branches, which add no part to a path: two
    nodes with one path are refused, unless the later is a layer of the same type and fields, the same module
    called again (torch has one name for all its calls): that one is kept apart by a key of its own."""

    def __init__(self, prefix: str):
        self.prefix = prefix
        self.nodes: dict[str, Node] = {}
        self.calls: dict[str, int] = {}  # by path: the calls of a module or op after its first
        self.count = 0  # nodes named so far: an unnamed node's name

    def named(self, node: Node) -> Node:
        self.count += 1
        other = self.nodes.setdefault(node.path, node)
        if other is node:
            return node
        if _called_again(node, other):
            calls = self.calls[node.path] = self.calls.get(node.path, 0) + 1
            key = f"{node.path}{CALL}{calls}"
            again = node._replace(path=key, shares=node.path) if isinstance(node, Layer) else _renamed_merge(node, key)
            self.nodes[key] = again
            return again
        name = node.path.rsplit(".", 1)[-1]
        places = other.where if other.where == node.where else f"{other.where} and {node.where}"
        if ".branches[" in node.where or ".branches[" in other.where:
            raise SpecError(f"{node.where}.name: {quoted(name)} names two nodes at the path {quoted(node.path)} "
                            f"({places}): a merge's branches add no part to a path; name them apart, or name "
                            "a branch")
        raise SpecError(f"{node.where}.name: {quoted(name)} names two nodes of one group ({places}); "
                        "give each its own name")


def _called_again(node: Node, other: Node) -> bool:
    """Whether `node` is a later call of what made `other` at the same path: a layer of the same type and fields
    (its parameters those of the first call), or a merge op of the same kind (`x + a(x)`, then `x + b(x)`, in one
    module)."""
    if isinstance(node, Layer) and isinstance(other, Layer):
        return (node.type, node.attrs) == (other.type, other.attrs) \
            and (node.shares == node.path or node.shares is None and weightless(node.type))
    return isinstance(node, Group) and isinstance(other, Group) and node.kind == other.kind != "sequence" \
        and node.label == other.label


def weightless(kind: str) -> bool:
    """Whether a layer type never holds parameters or buffers (an activation, a pool): one called again needs no
    `shares` to say whose they are."""
    if kind not in REGISTRY:
        return False
    layer = type(REGISTRY[kind])
    return layer.params is LayerType.params and layer.buffers is LayerType.buffers


CALL = "\0call"  # in a key: a later call of the module whose path comes before it (what a table shows)


def shown(path: str) -> str:
    """A node's path as the table shows it: a module called again has the path of its first call."""
    return path.partition(CALL)[0]


def _renamed_merge(node: Group, path: str) -> Group:
    """A merge under another key: its branches' keys follow it, the nodes in them keep their paths."""
    branches = tuple(branch._replace(path=branch_key(path, b)) for b, branch in enumerate(node.children))
    return node._replace(path=path, children=branches)


def printable(key: str) -> str:
    """A node's key in a figure's attributes: a later call as `path#k`."""
    return key.replace(CALL, "#")


def branch_key(merge_path: str, b: int) -> str:
    """The key of a merge's branch: never a row's path (a branch adds nothing to its nodes' paths)."""
    return f"{merge_path}\0branch{b}"


INPUT = "input"  # what a `from` calls the input of its sequence


def sibling_name(node: Node) -> str:
    """What a `from` in its sequence calls `node`: the last part of its path."""
    return node.path.rsplit(".", 1)[-1]


def joins(node: Node) -> TypeGuard[Group]:
    """Whether `node` is a merge of named nodes' outputs (no branches of its own)."""
    return isinstance(node, Group) and not node.children and node.kind != "sequence"


def source_positions(children: Sequence[Node]) -> list[tuple[int, ...]]:
    """What each node of a sequence takes: the positions of the nodes whose outputs it takes (-1: the sequence's
    input), from its `from` (checked when the spec was read) or else the node before it."""
    position = {sibling_name(child): k for k, child in enumerate(children)}
    position[INPUT] = -1
    return [tuple(position[s] for s in child.inputs) if child.inputs else (k - 1,) for k, child in enumerate(children)]


def _check_sources(children: tuple[Node, ...]) -> None:
    """Every name the `from` of `children` holds is an earlier node of theirs, or the input."""
    position = {sibling_name(child): k for k, child in enumerate(children)}
    for k, child in enumerate(children):
        for j, source in enumerate(child.inputs):
            at = position.get(source)
            if source == INPUT or (at is not None and at < k):
                continue
            here = f"{child.where}.from" + (f"[{j}]" if joins(child) else "")
            raise SpecError(f"{here}: {quoted(source)} {_why_not(children, k, source, at, position)}")


def _why_not(children: tuple[Node, ...], k: int, source: str, at: int | None, position: dict[str, int]) -> str:
    """Why `source` cannot be what node `k` takes: a cycle, a later node, or no node of that name."""
    if at is None:
        earlier = [sibling_name(child) for child in children[:k]] + [INPUT]
        inside = " (a 'from' names a node of the same sequence, not a node inside one)" if "." in source else ""
        return (f"is not the name of an earlier node of this sequence, nor {INPUT!r}{inside}"
                f"{suggest(source, earlier)}")
    loop = _loop(children, at, k, position)
    if at == k:
        return "is this node itself: a node cannot take its own output (a cycle)"
    if loop is not None:
        names = " <- ".join(quoted(sibling_name(children[m])) for m in [k, *loop])
        return f"makes a cycle: {names} (each takes the next one's output)"
    return (f"is a later node ({children[at].where}): a node takes the outputs of nodes before it, so that "
            "the graph has no cycle")


def _loop(children: tuple[Node, ...], start: int, goal: int, position: dict[str, int]) -> list[int] | None:
    """The nodes from `start` back, through what each takes (its `from`, or the node before it), to `goal`."""
    trail: dict[int, int] = {start: start}
    stack = [start]
    while stack:
        m = stack.pop()
        if m == goal:
            chain = [m]
            while chain[-1] != start:
                chain.append(trail[chain[-1]])
            return chain[::-1]
        taken = [position[s] for s in children[m].inputs if s in position] if children[m].inputs else [m - 1]
        for t in taken:
            if t >= 0 and t not in trail:
                trail[t] = m
                stack.append(t)
    return None


def _evaluated(raw: Any, env: Mapping[str, Any]) -> Any:
    if isinstance(raw, str):
        return evaluate(raw, env)
    if isinstance(raw, list):
        return [_evaluated(v, env) for v in raw]
    return raw


@functools.cache
def _layer_keys(kind: str) -> dict:
    return layer_keys(REGISTRY[kind])
