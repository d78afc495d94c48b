"""The core of the ComputationBuilder: handles, instruction creation, sub-computations, build.

Holds what every family of builder operations needs: the computation being built, argument
normalisation (element types, dimension lists), operand checks, the broadcasting of the
operation-semantics document ("InDim" `broadcast_dimensions` plus degenerate-dimension
broadcasting, lowered to explicit `reshape` + `broadcast` instructions), and the resolution
of computation arguments (`to_apply`, `condition`, `body`, branches). The operations
themselves live in the `builder_*.py` mixins; the public class is `hlo.builder`'s
`ComputationBuilder`.

Shapes of ordinary instructions come from the opcode table's shape rules (through
`HloComputation.add`); only instructions whose HLO form needs a declared shape (parameter,
constant, broadcast, reshape, convert, iota, rng, ...) get one computed here.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import numpy as np

from hlo import dtypes
from hlo.computation import HloComputation
from hlo.dtypes import PrimitiveType
from hlo.errors import ArgumentError, HloVerificationError, ShapeError, TfcompileError
from hlo.instruction import HloInstruction
from hlo.module import HloModule
from hlo.opcodes import Opcode
from hlo.shape import Shape

# A handle to a value under construction (XLA's ComputationDataHandle / XlaOp).
XlaOp = HloInstruction

# Anything naming an element type: PrimitiveType.F32, "f32", np.float32, np.dtype("f4").
ElementTypeLike = PrimitiveType | str | type | np.dtype

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.\-]*\Z")


def element_type(value: ElementTypeLike) -> PrimitiveType:
    """The PrimitiveType named by `value`; raises ArgumentError for anything else."""
    if isinstance(value, PrimitiveType):
        return value
    try:
        if isinstance(value, str):
            return dtypes.from_name(value)
        return dtypes.from_numpy(value)
    except TfcompileError as e:
        raise ArgumentError(f"not an element type: {value!r} ({e})") from None
    except TypeError:
        raise ArgumentError(f"not an element type: {value!r}") from None


def int_list(what: str, name: str, values: Sequence[int] | int) -> tuple[int, ...]:
    """`values` as a tuple of Python ints (a single int becomes a 1-tuple)."""
    if isinstance(values, (int, np.integer)) and not isinstance(values, bool):
        return (int(values),)
    if not isinstance(values, Iterable):
        raise ArgumentError(f"{what}: {name} must be a list of integers, got {values!r}")
    items = list(values)
    for v in items:
        if not isinstance(v, (int, np.integer)) or isinstance(v, bool):
            raise ArgumentError(f"{what}: {name} must be a list of integers, got {values!r}")
    return tuple(int(v) for v in items)


def int_arg(what: str, name: str, value: Any) -> int:
    """`value` as a Python int; bools and non-integers raise ArgumentError."""
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        return int(value)
    raise ArgumentError(f"{what}: {name} must be an integer, got {value!r}")


def float_arg(what: str, name: str, value: Any) -> float:
    """`value` as a Python float; non-numbers raise ArgumentError."""
    if isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool):
        return float(value)
    raise ArgumentError(f"{what}: {name} must be a number, got {value!r}")


def handle_list(what: str, name: str, values: Any) -> list[HloInstruction]:
    """`values` as a list of handles: a list or tuple, never a single handle."""
    if isinstance(values, HloInstruction) or not isinstance(values, (list, tuple)):
        raise ArgumentError(
            f"{what}: {name} must be a list of handles, got {type(values).__name__}"
        )
    return list(values)


def shape_text(shape: Shape) -> str:
    """A shape without its layout, as error messages print it."""
    return shape.to_text(with_layout=False)


def shapes_text(ops: Sequence[HloInstruction]) -> str:
    return ", ".join(shape_text(o.shape) for o in ops)


def combine_dims(what: str, a: Shape, b: Shape, da: int, db: int, where: str) -> int:
    """The broadcast size of two dimension sizes: equal, or one of them degenerate (1)."""
    if da == db or db == 1:
        return da
    if da == 1:
        return db
    raise ShapeError(
        f"{what}: cannot broadcast {shape_text(a)} and {shape_text(b)}: {where} sizes {da} and "
        f"{db} differ and neither is 1"
    )


class BuilderBase:
    """State and helpers shared by all builder operation families.

    A top-level builder owns an HloModule; sub-builders (`create_sub_builder`) add their
    computations to the same module, so instruction names stay unique module-wide.
    """

    def __init__(self, name: str, *, parent: BuilderBase | None = None) -> None:
        if not isinstance(name, str) or not _NAME.match(name):
            raise ArgumentError(f"builder name {name!r} is not a valid HLO identifier")
        self.name = name
        self.parent = parent
        self._module: HloModule = HloModule(name) if parent is None else parent._module
        self._comp = HloComputation(self._module.unique_computation_name(name))
        self._module.add_computation(self._comp)
        self._last: HloInstruction | None = None

    # --- queries -------------------------------------------------------------------------
    @property
    def computation(self) -> HloComputation:
        """The computation this builder adds instructions to."""
        return self._comp

    @property
    def is_sub_builder(self) -> bool:
        return self.parent is not None

    def shape_of(self, operand: XlaOp) -> Shape:
        """The shape of a handle (XLA's GetShape)."""
        if not isinstance(operand, HloInstruction):
            raise ArgumentError(f"shape_of: expected a handle, got {type(operand).__name__}")
        return operand.shape

    # --- instruction creation -------------------------------------------------------------
    def _check_operands(self, what: str, operands: Sequence[Any]) -> list[HloInstruction]:
        """The operands as instructions of this builder's computation, or an error."""
        out: list[HloInstruction] = []
        for i, o in enumerate(operands):
            if not isinstance(o, HloInstruction):
                raise ArgumentError(
                    f"{what}: operand {i} must be a handle made by this builder, got "
                    f"{type(o).__name__}"
                )
            if o.parent is not self._comp:
                owner = o.parent.name if o.parent is not None else "no computation"
                raise HloVerificationError(
                    f"{what}: operand {i} ({o.name}) belongs to {owner}, not to the "
                    f"computation {self._comp.name} being built by builder {self.name}"
                )
            out.append(o)
        return out

    def _add(
        self,
        what: str,
        opcode: Opcode,
        operands: Sequence[Any],
        shape: Shape | None = None,
        **attrs: Any,
    ) -> HloInstruction:
        """Append an instruction; the shape rule runs unless `shape` is declared.

        Shape-rule failures are re-raised with the builder operation and operand shapes.
        """
        ops = self._check_operands(what, operands)
        try:
            instr = self._comp.add(opcode, ops, shape=shape, **attrs)
        except ShapeError as e:
            raise ShapeError(f"{what}({shapes_text(ops)}): {e}") from e
        self._last = instr
        return instr

    def _require_array(self, what: str, operand: XlaOp, role: str = "operand") -> None:
        if not operand.shape.is_array:
            raise ShapeError(f"{what}: {role} must be an array, got {shape_text(operand.shape)}")

    def _require_scalar(self, what: str, operand: XlaOp, role: str) -> None:
        if not operand.shape.is_array or operand.shape.rank != 0:
            raise ShapeError(f"{what}: {role} must be a scalar, got {shape_text(operand.shape)}")

    def _check_dims_in_range(self, what: str, name: str, dims: Sequence[int], rank: int) -> None:
        for d in dims:
            if not 0 <= d < rank:
                raise ShapeError(
                    f"{what}: {name} {list(dims)} has {d}, out of range for rank {rank}"
                )
        if len(set(dims)) != len(dims):
            raise ShapeError(f"{what}: {name} {list(dims)} repeats a dimension")

    # --- movement primitives used by broadcasting ---------------------------------------------
    def _reshape_to(self, operand: XlaOp, dims: Sequence[int]) -> XlaOp:
        """A `reshape` to `dims` (no-op if the dims already match); element counts must agree."""
        dims = tuple(dims)
        if operand.shape.dims == dims:
            return operand
        shape = Shape.array(operand.shape.element_type, dims)
        if shape.num_elements != operand.shape.num_elements:
            raise ShapeError(
                f"reshape: cannot reshape {shape_text(operand.shape)} "
                f"({operand.shape.num_elements} elements) to {shape_text(shape)} "
                f"({shape.num_elements} elements)"
            )
        return self._add("reshape", Opcode.RESHAPE, [operand], shape=shape)

    def _expand(self, what: str, operand: XlaOp, positions: Sequence[int],
                out_dims: Sequence[int]) -> XlaOp:
        """Broadcast `operand` to `out_dims`, its dimension i landing on `positions[i]`.

        Degenerate (size-1) operand dimensions facing a larger output dimension are first
        removed with a reshape, since an HLO `broadcast` maps dimensions one to one.
        """
        out_dims = tuple(out_dims)
        src = operand.shape
        if src.dims == out_dims and tuple(positions) == tuple(range(src.rank)):
            return operand
        keep = [i for i in range(src.rank) if src.dims[i] == out_dims[positions[i]]]
        for i in range(src.rank):
            if i not in keep and src.dims[i] != 1:
                raise ShapeError(
                    f"{what}: cannot broadcast {shape_text(src)} to {list(out_dims)}: operand "
                    f"dimension {i} of size {src.dims[i]} meets output dimension "
                    f"{positions[i]} of size {out_dims[positions[i]]}"
                )
        if len(keep) != src.rank:
            operand = self._reshape_to(operand, [src.dims[i] for i in keep])
        shape = Shape.array(src.element_type, out_dims)
        return self._add(
            "broadcast", Opcode.BROADCAST, [operand], shape=shape,
            dimensions=tuple(positions[i] for i in keep),
        )

    def _broadcast_pair(
        self, what: str, lhs: XlaOp, rhs: XlaOp, broadcast_dimensions: Sequence[int]
    ) -> tuple[XlaOp, XlaOp]:
        """Bring two operands to one shape with the document's broadcasting rules.

        Same rank: degenerate-dimension broadcasting (sizes equal or 1). A scalar broadcasts
        to anything without `broadcast_dimensions`. Other rank mismatches need
        `broadcast_dimensions` ("InDim" broadcasting): entry i names the dimension of the
        higher-rank operand that dimension i of the lower-rank operand matches; entries
        strictly increase. Unmatched dimensions take the higher-rank operand's sizes.
        """
        self._check_operands(what, [lhs, rhs])
        self._require_array(what, lhs, "lhs")
        self._require_array(what, rhs, "rhs")
        bdims = int_list(what, "broadcast_dimensions", broadcast_dimensions)
        ls, rs = lhs.shape, rhs.shape
        pair = f"{shape_text(ls)} and {shape_text(rs)}"
        if ls.rank == rs.rank:
            if bdims and bdims != tuple(range(ls.rank)):
                raise ShapeError(
                    f"{what}: broadcast_dimensions {list(bdims)} given for operands of equal "
                    f"rank ({pair}); only the identity mapping is allowed"
                )
            small_pos: tuple[int, ...] = tuple(range(ls.rank))
            small, large = rhs, lhs
        else:
            small, large = (lhs, rhs) if ls.rank < rs.rank else (rhs, lhs)
            if small.shape.rank == 0:
                if bdims:
                    raise ShapeError(
                        f"{what}: broadcast_dimensions {list(bdims)} given with a scalar "
                        f"operand ({pair}); scalars broadcast without them"
                    )
                small_pos = ()
            else:
                small_pos = self._in_dim_positions(what, pair, bdims, small.shape, large.shape)
        out = list(large.shape.dims)
        for i, p in enumerate(small_pos):
            where = f"dimension {p}"
            out[p] = combine_dims(what, large.shape, small.shape, out[p], small.shape.dims[i],
                                  where)
        large_pos = tuple(range(large.shape.rank))
        new_large = self._expand(what, large, large_pos, out)
        new_small = self._expand(what, small, small_pos, out)
        if large is lhs:
            return new_large, new_small
        return new_small, new_large

    @staticmethod
    def _in_dim_positions(what: str, pair: str, bdims: tuple[int, ...], small: Shape,
                          large: Shape) -> tuple[int, ...]:
        if not bdims:
            raise ShapeError(
                f"{what}: operands of different ranks ({pair}) need broadcast_dimensions "
                f"naming, for each dimension of the rank-{small.rank} operand, the dimension "
                f"of the rank-{large.rank} operand it matches"
            )
        if len(bdims) != small.rank:
            raise ShapeError(
                f"{what}: broadcast_dimensions {list(bdims)} must have one entry per dimension "
                f"of the lower-rank operand {shape_text(small)} (rank {small.rank})"
            )
        for i, d in enumerate(bdims):
            if not 0 <= d < large.rank:
                raise ShapeError(
                    f"{what}: broadcast_dimensions {list(bdims)}: {d} is not a dimension of "
                    f"{shape_text(large)}"
                )
            if i and bdims[i - 1] >= d:
                raise ShapeError(
                    f"{what}: broadcast_dimensions {list(bdims)} must be strictly increasing"
                )
        return bdims

    # --- computations ----------------------------------------------------------------------
    def create_sub_builder(self, name: str) -> Any:
        """A builder for a computation called by this one (to_apply, body, branches, ...).

        Its computation joins this builder's module; pass the sub-builder (or its
        `computation`) wherever an operation takes a computation.
        """
        return type(self)(name, parent=self)

    def _finish(self, root: XlaOp | None = None) -> HloComputation:
        """Set the root (default: the last instruction added) and return the computation."""
        if root is None:
            root = self._last
        if root is None:
            raise HloVerificationError(
                f"builder {self.name}: the computation has no instructions"
            )
        self._check_operands(f"builder {self.name} root", [root])
        self._comp.set_root(root)
        return self._comp

    def build_computation(self, root: XlaOp | None = None) -> HloComputation:
        """Finish this (sub-)builder's computation; `root` defaults to the last instruction."""
        return self._finish(root)

    def _computation(
        self, what: str, role: str, spec: ComputationLike, params: Sequence[Shape]
    ) -> HloComputation:
        """Resolve a computation argument and check it takes `params`.

        A callable is called as `fn(sub_builder, *parameters)` on a fresh sub-builder whose
        parameters have the shapes `params`; it returns the root (a list or tuple of handles
        becomes a tuple root).
        """
        if isinstance(spec, HloComputation):
            comp = spec
            if comp.parent is not self._module:
                raise HloVerificationError(
                    f"{what}: {role} computation {comp.name} does not belong to the module "
                    f"of builder {self.name}; build it with create_sub_builder"
                )
            if comp.root is None:
                raise HloVerificationError(f"{what}: {role} computation {comp.name} has no root")
        elif isinstance(spec, BuilderBase):
            if spec._module is not self._module or spec is self:
                raise HloVerificationError(
                    f"{what}: {role} builder {spec.name} is not a sub-builder of {self.name}"
                )
            comp = spec._comp if spec._comp.root is not None else spec._finish()
        elif callable(spec):
            comp = self._computation_from_callable(what, role, spec, params)
        else:
            raise ArgumentError(
                f"{what}: {role} must be a computation, a sub-builder or a callable, got "
                f"{type(spec).__name__}"
            )
        self._check_signature(what, role, comp, params)
        return comp

    def _computation_from_callable(
        self, what: str, role: str, fn: Callable[..., Any], params: Sequence[Shape]
    ) -> HloComputation:
        fn_name = getattr(fn, "__name__", "")
        name = fn_name if _NAME.match(fn_name) else f"{what}_{role}".replace(" ", "_")
        sub = self.create_sub_builder(name)
        handles = [sub.parameter(i, s, f"p{i}") for i, s in enumerate(params)]
        result = fn(sub, *handles)
        if isinstance(result, (list, tuple)):
            result = sub.tuple(list(result))
        if not isinstance(result, HloInstruction):
            raise ArgumentError(
                f"{what}: the {role} callable must return a handle (or a list of handles) of "
                f"its sub-builder, got {type(result).__name__}"
            )
        comp: HloComputation = sub._finish(result)
        return comp

    @staticmethod
    def _check_signature(
        what: str, role: str, comp: HloComputation, params: Sequence[Shape]
    ) -> None:
        got = comp.program_shape().parameters
        ok = len(got) == len(params) and all(
            g.compatible(p) for g, p in zip(got, params, strict=True)
        )
        if not ok:
            want = ", ".join(shape_text(p) for p in params)
            have = ", ".join(shape_text(p) for p in got)
            raise ShapeError(
                f"{what}: {role} computation {comp.name} takes ({have}); expected ({want})"
            )

    # --- module ------------------------------------------------------------------------------
    def build(self, root: XlaOp | None = None) -> HloModule:
        """The module: this builder's computation as entry, callees first.

        `root` defaults to the last instruction added. Only a top-level builder builds a
        module; sub-builders finish with `build_computation` (or are passed directly).
        """
        if self.parent is not None:
            raise HloVerificationError(
                f"builder {self.name} is a sub-builder; pass it (or build_computation()) to "
                f"the operation that calls it, and build() the top-level builder"
            )
        entry = self._finish(root)
        self._module.entry = entry
        # Keep only reachable computations, callee-first (unused sub-builders drop out).
        self._module.computations = self._module.computations_post_order()
        return self._module


# What a computation argument may be: an HloComputation of this builder's module, a
# sub-builder of this builder, or a Python callable `fn(sub_builder, *params) -> root`.
ComputationLike = HloComputation | BuilderBase | Callable[..., Any]
