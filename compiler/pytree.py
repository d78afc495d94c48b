"""Pytrees: nested tuples, lists and dicts of leaves, flattened to a leaf list and a treedef.

`jit`, `grad` and the control-flow operations accept and return pytrees. A treedef is a
plain nested tuple, so it is hashable and cheap to compare: it is part of `jit`'s cache key.
Dict entries are ordered by sorted key, so `{"b": x, "a": y}` and `{"a": y, "b": x}` have
the same treedef. `None` is an empty node (no leaves), as in JAX. This module knows
nothing about arrays or tracing: anything that is not a tuple, list, dict or None is a leaf.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from hlo.errors import ArgumentError

# Node kinds of a treedef. A treedef is LEAF, NONE, or (kind, children) for tuples and lists,
# or (DICT, keys, children) for dicts; children are treedefs.
LEAF = "*"
NONE = "None"
TUPLE = "tuple"
LIST = "list"
DICT = "dict"

TreeDef = Any


def tree_flatten(tree: Any) -> tuple[list[Any], TreeDef]:
    """The leaves of `tree` in order, and its structure.

    Raises:
        ArgumentError: a dict key that cannot be sorted against the others.
    """
    leaves: list[Any] = []
    treedef = _flatten(tree, leaves)
    return leaves, treedef


def _flatten(node: Any, leaves: list[Any]) -> TreeDef:
    kind = type(node)
    if kind is tuple or kind is list:
        children = _flatten_children(node, leaves)
        return (TUPLE if kind is tuple else LIST, children)
    if kind is dict:
        keys = _sorted_keys(node)
        return (DICT, keys, _flatten_children([node[k] for k in keys], leaves))
    if node is None:
        return NONE
    leaves.append(node)
    return LEAF


def _flatten_children(nodes: Sequence[Any], leaves: list[Any]) -> tuple[TreeDef, ...]:
    # Leaves are taken here rather than by a call each: `jit` flattens its arguments on
    # every call, so this loop is per-call overhead.
    children = []
    for c in nodes:
        kind = type(c)
        if kind is tuple or kind is list or kind is dict or c is None:
            children.append(_flatten(c, leaves))
        else:
            leaves.append(c)
            children.append(LEAF)
    return tuple(children)


def _sorted_keys(d: dict[Any, Any]) -> tuple[Any, ...]:
    try:
        return tuple(sorted(d))
    except TypeError:
        raise ArgumentError(
            f"dict keys {list(d)!r} cannot be sorted; a pytree dict needs comparable keys"
        ) from None


def tree_unflatten(treedef: TreeDef, leaves: Sequence[Any]) -> Any:
    """The tree of structure `treedef` holding `leaves` (in the order tree_flatten gives)."""
    it = iter(leaves)
    tree = _build(treedef, it)
    if next(it, _END) is not _END:
        raise ArgumentError(f"too many leaves for tree structure {tree_repr(treedef)}")
    return tree


_END = object()


def _build(treedef: TreeDef, it: Any) -> Any:
    if treedef == LEAF:
        leaf = next(it, _END)
        if leaf is _END:
            raise ArgumentError("too few leaves for the tree structure")
        return leaf
    if treedef == NONE:
        return None
    kind = treedef[0]
    if kind == TUPLE:
        return tuple(_build(c, it) for c in treedef[1])
    if kind == LIST:
        return [_build(c, it) for c in treedef[1]]
    return {k: _build(c, it) for k, c in zip(treedef[1], treedef[2], strict=True)}


def unflattener(treedef: TreeDef) -> Callable[[Sequence[Any]], Any]:
    """A function rebuilding trees of structure `treedef` from leaves, specialised for the
    common flat cases (one leaf, a tuple, list or dict of leaves) that `jit` returns on
    every call, and made of closures built once for nested ones."""
    if treedef == LEAF:
        return lambda leaves: leaves[0]
    if treedef == NONE:
        return lambda leaves: None
    flat = all(c == LEAF for c in treedef[-1])
    if flat and treedef[0] == TUPLE:
        return tuple
    if flat and treedef[0] == LIST:
        return list
    if flat and treedef[0] == DICT:
        keys = treedef[1]
        return lambda leaves: dict(zip(keys, leaves, strict=True))
    build = _builder(treedef)
    count = num_leaves(treedef)

    def rebuild(leaves: Sequence[Any]) -> Any:
        if len(leaves) != count:
            raise ArgumentError(f"{len(leaves)} leaves for tree structure "
                                f"{tree_repr(treedef)}, which holds {count}")
        return build(iter(leaves))

    return rebuild


def _builder(treedef: TreeDef) -> Callable[[Any], Any]:
    """A function taking a node of structure `treedef` from a leaf iterator."""
    if treedef == LEAF:
        return next
    if treedef == NONE:
        return lambda it: None
    kind = treedef[0]
    children = [_builder(c) for c in treedef[-1]]
    if kind == TUPLE:
        return lambda it: tuple([b(it) for b in children])
    if kind == LIST:
        return lambda it: [b(it) for b in children]
    keys = treedef[1]
    return lambda it: dict(zip(keys, [b(it) for b in children], strict=True))


def num_leaves(treedef: TreeDef) -> int:
    """How many leaves a tree of structure `treedef` holds."""
    if treedef == LEAF:
        return 1
    if treedef == NONE:
        return 0
    return sum(num_leaves(c) for c in treedef[-1])


def tree_map(fn: Callable[..., Any], tree: Any, *rest: Any) -> Any:
    """Apply `fn` to corresponding leaves of `tree` and `rest` (which share its structure)."""
    leaves, treedef = tree_flatten(tree)
    others = []
    for i, r in enumerate(rest):
        r_leaves, r_def = tree_flatten(r)
        if r_def != treedef:
            raise ArgumentError(
                f"tree_map: tree {i + 1} has structure {tree_repr(r_def)}, expected "
                f"{tree_repr(treedef)}"
            )
        others.append(r_leaves)
    return tree_unflatten(treedef, [fn(*xs) for xs in zip(leaves, *others, strict=True)])


def tree_leaves(tree: Any) -> list[Any]:
    """The leaves of `tree` in order."""
    return tree_flatten(tree)[0]


def leaf_paths(treedef: TreeDef, prefix: str = "") -> list[str]:
    """A readable path per leaf (`[0]['w']`), used to name arguments in error messages."""
    if treedef == LEAF:
        return [prefix]
    if treedef == NONE:
        return []
    if treedef[0] == DICT:
        return [p for k, c in zip(treedef[1], treedef[2], strict=True)
                for p in leaf_paths(c, f"{prefix}[{k!r}]")]
    return [p for i, c in enumerate(treedef[1]) for p in leaf_paths(c, f"{prefix}[{i}]")]


def tree_repr(treedef: TreeDef) -> str:
    """A short text form of a treedef: `(*, [*, *], {'a': *})`."""
    if treedef == LEAF:
        return "*"
    if treedef == NONE:
        return "None"
    kind = treedef[0]
    if kind == DICT:
        items = ", ".join(f"{k!r}: {tree_repr(c)}" for k, c in zip(treedef[1], treedef[2],
                                                                   strict=True))
        return "{" + items + "}"
    inner = ", ".join(tree_repr(c) for c in treedef[1])
    if kind == TUPLE:
        return f"({inner},)" if len(treedef[1]) == 1 else f"({inner})"
    return f"[{inner}]"
