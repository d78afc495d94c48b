"""Computing builder operations: Dot, DotGeneral, the convolutions, Reduce, ReduceWindow,
SelectAndScatter, Sort, the batch norms and CrossReplicaSum.

Window paddings may be given as the strings "SAME" / "VALID" (XLA's Padding::kSame /
kValid, resolved by `make_padding`) or as explicit (low, high) pairs per dimension.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from hlo.attributes import ConvDimLabels, Window, WindowDim
from hlo.builder_core import (
    ComputationLike,
    XlaOp,
    float_arg,
    handle_list,
    int_arg,
    int_list,
    shape_text,
)
from hlo.builder_movement import MovementOps
from hlo.errors import ArgumentError, ShapeError
from hlo.instruction import HloInstruction
from hlo.opcodes import Opcode
from hlo.shape import Shape

# Window padding: "SAME", "VALID", or one (low, high) pair per spatial dimension.
PaddingSpec = str | Sequence[Sequence[int]]


@dataclass(frozen=True)
class DotDimensionNumbers:
    """DotGeneral's dimension numbers (contracting and batch dimensions of each side)."""

    lhs_contracting_dimensions: Sequence[int]
    rhs_contracting_dimensions: Sequence[int]
    lhs_batch_dimensions: Sequence[int] = ()
    rhs_batch_dimensions: Sequence[int] = ()


def make_padding(
    input_sizes: Sequence[int], window_sizes: Sequence[int], strides: Sequence[int],
    padding: str,
) -> list[tuple[int, int]]:
    """(low, high) padding per dimension for "VALID" (none) or "SAME".

    SAME pads so that, ignoring strides, the output has the input's size: the output size is
    ceil(input / stride), the total padding max(0, (out - 1) * stride + window - input),
    split with the odd element on the high side (XLA's MakePadding).

    Raises:
        ArgumentError: `padding` is neither string.
    """
    kind = padding.upper()
    if kind == "VALID":
        return [(0, 0)] * len(input_sizes)
    if kind != "SAME":
        raise ArgumentError(
            f"padding must be 'SAME', 'VALID' or (low, high) pairs, got {padding!r}"
        )
    if not len(input_sizes) == len(window_sizes) == len(strides):
        raise ShapeError(
            f"make_padding: {len(input_sizes)} input sizes, {len(window_sizes)} window sizes "
            f"and {len(strides)} strides"
        )
    pads = []
    for size, window, stride in zip(input_sizes, window_sizes, strides, strict=True):
        out = math.ceil(size / stride)
        total = max(0, (out - 1) * stride + window - size)
        pads.append((total // 2, total - total // 2))
    return pads


def default_conv_dimension_numbers(num_spatial: int) -> ConvDimLabels:
    """The 2018 Conv layout: input [batch, z, spatial...], kernel [output-z, input-z,
    spatial...], output [batch, z, spatial...] (`bf01_oi01->bf01` in 2-D)."""
    spatial = tuple(range(2, 2 + num_spatial))
    return ConvDimLabels(
        input_batch=0, input_feature=1, input_spatial=spatial,
        kernel_input_feature=1, kernel_output_feature=0, kernel_spatial=spatial,
        output_batch=0, output_feature=1, output_spatial=spatial,
    )


class ComputeOps(MovementOps):
    """Linear algebra, reductions, windows, sorting and batch normalisation."""

    # --- windows -----------------------------------------------------------------------------
    def _window(
        self, what: str, base: Sequence[int], window_dimensions: Sequence[int],
        window_strides: Sequence[int], padding: PaddingSpec,
        base_dilations: Sequence[int] | None = None,
        window_dilations: Sequence[int] | None = None,
    ) -> Window:
        sizes = int_list(what, "window_dimensions", window_dimensions)
        strides = int_list(what, "window_strides", window_strides)
        n = len(base)
        base_dil = (1,) * n if base_dilations is None else int_list(what, "lhs/base dilation",
                                                                     base_dilations)
        win_dil = (1,) * n if window_dilations is None else int_list(what, "rhs/window dilation",
                                                                      window_dilations)
        if not len(sizes) == len(strides) == len(base_dil) == len(win_dil) == n:
            raise ShapeError(
                f"{what}: the window needs {n} sizes, strides and dilations (one per "
                f"{'spatial ' if what.startswith('conv') else ''}dimension), got "
                f"{len(sizes)}, {len(strides)}, {len(base_dil)} and {len(win_dil)}"
            )
        if any(v < 1 for v in strides + base_dil + win_dil) or any(v < 0 for v in sizes):
            raise ShapeError(
                f"{what}: window sizes must be >= 0 and strides and dilations >= 1 (sizes "
                f"{list(sizes)}, strides {list(strides)})"
            )
        if isinstance(padding, str):
            # SAME keeps the dilated input's size, so resolve it on dilated extents.
            dilated_base = [
                (b - 1) * d + 1 if b else 0 for b, d in zip(base, base_dil, strict=True)
            ]
            dilated_window = [
                (w - 1) * d + 1 if w else 0 for w, d in zip(sizes, win_dil, strict=True)
            ]
            pads = make_padding(dilated_base, dilated_window, strides, padding)
        else:
            pads = [int_list(what, "padding pair", p) for p in padding]  # type: ignore[misc]
            if len(pads) != n or any(len(p) != 2 for p in pads):
                raise ShapeError(f"{what}: padding needs one (low, high) pair per dimension ({n})")
        return Window(tuple(
            WindowDim(size=w, stride=s, padding_low=lo, padding_high=hi,
                      window_dilation=wd, base_dilation=bd)
            for w, s, (lo, hi), wd, bd in zip(sizes, strides, pads, win_dil, base_dil, strict=True)
        ))

    # --- dot ---------------------------------------------------------------------------------
    def dot(self, lhs: XlaOp, rhs: XlaOp) -> XlaOp:
        """Vector.vector -> scalar, matrix.vector -> vector, matrix.matrix -> matrix.

        Contracts the last dimension of lhs with the first of rhs.
        """
        what = "dot"
        self._check_operands(what, [lhs, rhs])
        self._require_array(what, lhs, "lhs")
        self._require_array(what, rhs, "rhs")
        ls, rs = lhs.shape, rhs.shape
        if ls.rank not in (1, 2) or rs.rank not in (1, 2):
            raise ShapeError(
                f"{what}: supports vectors and matrices, got {shape_text(ls)} . "
                f"{shape_text(rs)}; use dot_general for higher ranks"
            )
        if ls.dims[-1] != rs.dims[0]:
            raise ShapeError(
                f"{what}: contracting dimensions differ: {shape_text(ls)} . {shape_text(rs)} "
                f"({ls.dims[-1]} vs {rs.dims[0]})"
            )
        return self._add(what, Opcode.DOT, [lhs, rhs],
                         lhs_contracting_dims=(ls.rank - 1,), rhs_contracting_dims=(0,))

    def dot_general(self, lhs: XlaOp, rhs: XlaOp,
                    dimension_numbers: DotDimensionNumbers) -> XlaOp:
        """Dot with explicit contracting and batch dimensions.

        The result lists the batch dimensions, then lhs's free dimensions, then rhs's.
        """
        what = "dot_general"
        dn = dimension_numbers
        if not isinstance(dn, DotDimensionNumbers):
            raise ArgumentError(f"{what}: dimension_numbers must be a DotDimensionNumbers, got "
                                f"{type(dn).__name__}")
        return self._add(
            what, Opcode.DOT, [lhs, rhs],
            lhs_batch_dims=int_list(what, "lhs_batch_dimensions", dn.lhs_batch_dimensions),
            lhs_contracting_dims=int_list(
                what, "lhs_contracting_dimensions", dn.lhs_contracting_dimensions
            ),
            rhs_batch_dims=int_list(what, "rhs_batch_dimensions", dn.rhs_batch_dimensions),
            rhs_contracting_dims=int_list(
                what, "rhs_contracting_dimensions", dn.rhs_contracting_dimensions
            ),
        )

    # --- convolution -------------------------------------------------------------------------
    def conv(self, lhs: XlaOp, rhs: XlaOp, window_strides: Sequence[int],
             padding: str) -> XlaOp:
        """Convolution in the default layout with "SAME" or "VALID" padding."""
        return self.conv_general_dilated(lhs, rhs, window_strides, padding)

    def conv_with_general_padding(
        self, lhs: XlaOp, rhs: XlaOp, window_strides: Sequence[int],
        padding: Sequence[Sequence[int]], lhs_dilation: Sequence[int] | None = None,
        rhs_dilation: Sequence[int] | None = None,
    ) -> XlaOp:
        """Convolution in the default layout with (low, high) padding per spatial dimension."""
        return self.conv_general_dilated(lhs, rhs, window_strides, padding, lhs_dilation,
                                         rhs_dilation)

    def conv_general_dilated(
        self, lhs: XlaOp, rhs: XlaOp, window_strides: Sequence[int], padding: PaddingSpec,
        lhs_dilation: Sequence[int] | None = None, rhs_dilation: Sequence[int] | None = None,
        dimension_numbers: ConvDimLabels | None = None, feature_group_count: int = 1,
        batch_group_count: int = 1,
    ) -> XlaOp:
        """The general convolution (ComputationBuilder::ConvGeneralDilated).

        `dimension_numbers` defaults to `default_conv_dimension_numbers`; a string padding
        is resolved on the dilated input and kernel sizes.
        """
        what = "conv"
        self._check_operands(what, [lhs, rhs])
        self._require_array(what, lhs, "lhs")
        self._require_array(what, rhs, "rhs")
        n = lhs.shape.rank - 2
        if n < 0 or rhs.shape.rank != lhs.shape.rank:
            raise ShapeError(
                f"{what}: lhs {shape_text(lhs.shape)} and rhs {shape_text(rhs.shape)} must "
                f"both have rank n+2 (n spatial dimensions)"
            )
        dn = dimension_numbers or default_conv_dimension_numbers(n)
        if len(dn.input_spatial) != n or len(dn.kernel_spatial) != n:
            raise ShapeError(f"{what}: dimension numbers name {len(dn.input_spatial)} spatial "
                             f"dimensions for operands of rank {lhs.shape.rank}")
        base = [lhs.shape.dims[d] for d in dn.input_spatial]
        kernel = [rhs.shape.dims[d] for d in dn.kernel_spatial]
        window = self._window(what, base, kernel, window_strides, padding, lhs_dilation,
                              rhs_dilation)
        return self._add(what, Opcode.CONVOLUTION, [lhs, rhs], window=window, dim_labels=dn,
                         feature_group_count=int_arg(what, "feature_group_count",
                                                     feature_group_count),
                         batch_group_count=int_arg(what, "batch_group_count",
                                                   batch_group_count))

    # --- reductions --------------------------------------------------------------------------
    def reduce(self, operand: XlaOp | Sequence[XlaOp], init_value: XlaOp | Sequence[XlaOp],
               computation: ComputationLike, dimensions: Sequence[int]) -> XlaOp:
        """Reduce `dimensions` away with `computation` (T, T -> T), starting at `init_value`.

        Lists of operands and init values make a variadic reduce whose computation takes
        (accumulators..., elements...) and returns a tuple.
        """
        what = "reduce"
        operands = ([operand] if isinstance(operand, HloInstruction)
                    else handle_list(what, "operands", operand))
        inits = ([init_value] if isinstance(init_value, HloInstruction)
                 else handle_list(what, "init values", init_value))
        self._check_operands(what, operands + inits)
        if not operands or len(operands) != len(inits):
            raise ShapeError(f"{what}: needs one init value per operand, got {len(operands)} "
                             f"operand(s) and {len(inits)} init value(s)")
        for o in operands:
            self._require_array(what, o)
        for i in inits:
            self._require_scalar(what, i, "init_value")
        dims = int_list(what, "dimensions", dimensions)
        self._check_dims_in_range(what, "dimensions", dims, operands[0].shape.rank)
        scalars = [Shape.array(i.shape.element_type, ()) for i in inits]
        comp = self._computation(what, "computation", computation, scalars + scalars)
        return self._add(what, Opcode.REDUCE, operands + inits, dimensions=dims, to_apply=comp)

    def reduce_all(self, operand: XlaOp, init_value: XlaOp,
                   computation: ComputationLike) -> XlaOp:
        """Reduce every dimension: a scalar."""
        self._check_operands("reduce_all", [operand])
        return self.reduce(operand, init_value, computation, range(operand.shape.rank))

    def reduce_window(
        self, operand: XlaOp, init_value: XlaOp, computation: ComputationLike,
        window_dimensions: Sequence[int], window_strides: Sequence[int],
        padding: PaddingSpec = "VALID", base_dilations: Sequence[int] | None = None,
        window_dilations: Sequence[int] | None = None,
    ) -> XlaOp:
        """Reduce every window position of `operand` (pooling) with `computation`."""
        what = "reduce_window"
        self._check_operands(what, [operand, init_value])
        self._require_array(what, operand)
        self._require_scalar(what, init_value, "init_value")
        window = self._window(what, operand.shape.dims, window_dimensions, window_strides,
                              padding, base_dilations, window_dilations)
        scalar = Shape.array(init_value.shape.element_type, ())
        comp = self._computation(what, "computation", computation, [scalar, scalar])
        return self._add(what, Opcode.REDUCE_WINDOW, [operand, init_value], window=window,
                         to_apply=comp)

    def select_and_scatter(
        self, operand: XlaOp, select: ComputationLike, window_dimensions: Sequence[int],
        window_strides: Sequence[int], padding: PaddingSpec, source: XlaOp,
        init_value: XlaOp, scatter: ComputationLike,
    ) -> XlaOp:
        """Select one element per window with `select` (T, T -> PRED), then combine `source`
        into an array of `init_value`s at the selected positions with `scatter` (T, T -> T)."""
        what = "select_and_scatter"
        self._check_operands(what, [operand, source, init_value])
        self._require_array(what, operand)
        self._require_array(what, source, "source")
        self._require_scalar(what, init_value, "init_value")
        window = self._window(what, operand.shape.dims, window_dimensions, window_strides,
                              padding)
        t = Shape.array(operand.shape.element_type, ())
        s = Shape.array(source.shape.element_type, ())
        select_comp = self._computation(what, "select", select, [t, t])
        scatter_comp = self._computation(what, "scatter", scatter, [s, s])
        return self._add(what, Opcode.SELECT_AND_SCATTER, [operand, source, init_value],
                         window=window, select=select_comp, scatter=scatter_comp)

    # --- sorting -----------------------------------------------------------------------------
    def sort(self, keys: XlaOp, values: Sequence[XlaOp] = (), dimension: int = -1,
             is_stable: bool = False, comparator: ComputationLike | None = None) -> XlaOp:
        """Sort `keys` ascending along `dimension` (default: the last), permuting `values`
        alike. With values the result is a tuple (keys, values...).

        `comparator` (lhs_key, rhs_key, lhs_value, rhs_value, ... -> PRED) replaces the
        default less-than on the keys.
        """
        what = "sort"
        operands = self._check_operands(what, [keys, *handle_list(what, "values", values)])
        for o in operands:
            self._require_array(what, o)
        rank = keys.shape.rank
        dimension = int_arg(what, "dimension", dimension)
        dim = dimension + rank if dimension < 0 else dimension
        if not 0 <= dim < rank:
            raise ShapeError(f"{what}: dimension {dimension} out of range for "
                             f"{shape_text(keys.shape)}")

        def less_than(sb: ComputeOps, lhs: XlaOp, rhs: XlaOp, *rest: XlaOp) -> XlaOp:
            return sb.lt(lhs, rhs)

        params = []
        for o in operands:
            scalar = Shape.array(o.shape.element_type, ())
            params += [scalar, scalar]
        comp = self._computation(what, "comparator", comparator or less_than, params)
        return self._add(what, Opcode.SORT, operands, dimensions=(dim,),
                         is_stable=bool(is_stable), to_apply=comp)

    # --- batch normalisation -----------------------------------------------------------------
    def batch_norm_training(self, operand: XlaOp, scale: XlaOp, offset: XlaOp, epsilon: float,
                            feature_index: int) -> XlaOp:
        """Normalise over all but `feature_index`: tuple (output, batch_mean, batch_var)."""
        what = "batch_norm_training"
        return self._add(what, Opcode.BATCH_NORM_TRAINING, [operand, scale, offset],
                         epsilon=float_arg(what, "epsilon", epsilon),
                         feature_index=int_arg(what, "feature_index", feature_index))

    def batch_norm_inference(self, operand: XlaOp, scale: XlaOp, offset: XlaOp, mean: XlaOp,
                             variance: XlaOp, epsilon: float, feature_index: int) -> XlaOp:
        """Normalise with the given mean and variance: an array shaped like operand."""
        what = "batch_norm_inference"
        return self._add(what, Opcode.BATCH_NORM_INFERENCE,
                         [operand, scale, offset, mean, variance],
                         epsilon=float_arg(what, "epsilon", epsilon),
                         feature_index=int_arg(what, "feature_index", feature_index))

    def batch_norm_grad(self, operand: XlaOp, scale: XlaOp, mean: XlaOp, variance: XlaOp,
                        grad_output: XlaOp, epsilon: float, feature_index: int) -> XlaOp:
        """Gradients of batch norm: tuple (grad_operand, grad_scale, grad_offset)."""
        what = "batch_norm_grad"
        return self._add(what, Opcode.BATCH_NORM_GRAD,
                         [operand, scale, mean, variance, grad_output],
                         epsilon=float_arg(what, "epsilon", epsilon),
                         feature_index=int_arg(what, "feature_index", feature_index))

    # --- replicas ----------------------------------------------------------------------------
    def cross_replica_sum(self, operand: XlaOp) -> XlaOp:
        """The sum of `operand` over all replicas (the operand itself on one replica)."""
        return self._add("cross_replica_sum", Opcode.CROSS_REPLICA_SUM, [operand])
