"""Pure shape rules, one function per op family; no IR imports.

Each rule takes the operand shapes, the attributes (called computations given as
`ProgramShape`) and the declared result shape (None when not declared) and returns the
result shape, or raises ShapeError naming the op, the operand shapes and the violated rule.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from hlo.shape import Shape


def abs_(operands: Sequence[Shape], attrs: Mapping[str, Any], declared: Shape | None) -> Shape:
    raise NotImplementedError("abs_")  # TODO(#2): being written


def after_all(operands: Sequence[Shape], attrs: Mapping[str, Any], declared: Shape | None) -> Shape:
    raise NotImplementedError("after_all")  # TODO(#2): being written


def all_reduce(operands: Sequence[Shape], attrs: Mapping[str, Any], declared: Shape | None) -> Shape:
    raise NotImplementedError("all_reduce")  # TODO(#2): being written


def batch_norm_grad(operands: Sequence[Shape], attrs: Mapping[str, Any], declared: Shape | None) -> Shape:
    raise NotImplementedError("batch_norm_grad")  # TODO(#2): being written


def batch_norm_inference(operands: Sequence[Shape], attrs: Mapping[str, Any], declared: Shape | None) -> Shape:
    raise NotImplementedError("batch_norm_inference")  # TODO(#2): being written


def batch_norm_training(operands: Sequence[Shape], attrs: Mapping[str, Any], declared: Shape | None) -> Shape:
    raise NotImplementedError("batch_norm_training")  # TODO(#2): being written


def binary_float(operands: Sequence[Shape], attrs: Mapping[str, Any], declared: Shape | None) -> Shape:
    raise NotImplementedError("binary_float")  # TODO(#2): being written


def binary_integer(operands: Sequence[Shape], attrs: Mapping[str, Any], declared: Shape | None) -> Shape:
    raise NotImplementedError("binary_integer")  # TODO(#2): being written


def binary_logical(operands: Sequence[Shape], attrs: Mapping[str, Any], declared: Shape | None) -> Shape:
    raise NotImplementedError("binary_logical")  # TODO(#2): being written


def binary_numeric(operands: Sequence[Shape], attrs: Mapping[str, Any], declared: Shape | None) -> Shape:
    raise NotImplementedError("binary_numeric")  # TODO(#2): being written


def bitcast(operands: Sequence[Shape], attrs: Mapping[str, Any], declared: Shape | None) -> Shape:
    raise NotImplementedError("bitcast")  # TODO(#2): being written


def bitcast_convert(operands: Sequence[Shape], attrs: Mapping[str, Any], declared: Shape | None) -> Shape:
    raise NotImplementedError("bitcast_convert")  # TODO(#2): being written


def broadcast(operands: Sequence[Shape], attrs: Mapping[str, Any], declared: Shape | None) -> Shape:
    raise NotImplementedError("broadcast")  # TODO(#2): being written


def call(operands: Sequence[Shape], attrs: Mapping[str, Any], declared: Shape | None) -> Shape:
    raise NotImplementedError("call")  # TODO(#2): being written


def cholesky(operands: Sequence[Shape], attrs: Mapping[str, Any], declared: Shape | None) -> Shape:
    raise NotImplementedError("cholesky")  # TODO(#2): being written


def clamp(operands: Sequence[Shape], attrs: Mapping[str, Any], declared: Shape | None) -> Shape:
    raise NotImplementedError("clamp")  # TODO(#2): being written


def compare(operands: Sequence[Shape], attrs: Mapping[str, Any], declared: Shape | None) -> Shape:
    raise NotImplementedError("compare")  # TODO(#2): being written


def complex_(operands: Sequence[Shape], attrs: Mapping[str, Any], declared: Shape | None) -> Shape:
    raise NotImplementedError("complex_")  # TODO(#2): being written


def concatenate(operands: Sequence[Shape], attrs: Mapping[str, Any], declared: Shape | None) -> Shape:
    raise NotImplementedError("concatenate")  # TODO(#2): being written


def conditional(operands: Sequence[Shape], attrs: Mapping[str, Any], declared: Shape | None) -> Shape:
    raise NotImplementedError("conditional")  # TODO(#2): being written


def constant(operands: Sequence[Shape], attrs: Mapping[str, Any], declared: Shape | None) -> Shape:
    raise NotImplementedError("constant")  # TODO(#2): being written


def convert(operands: Sequence[Shape], attrs: Mapping[str, Any], declared: Shape | None) -> Shape:
    raise NotImplementedError("convert")  # TODO(#2): being written


def convolution(operands: Sequence[Shape], attrs: Mapping[str, Any], declared: Shape | None) -> Shape:
    raise NotImplementedError("convolution")  # TODO(#2): being written


def copy(operands: Sequence[Shape], attrs: Mapping[str, Any], declared: Shape | None) -> Shape:
    raise NotImplementedError("copy")  # TODO(#2): being written


def custom_call(operands: Sequence[Shape], attrs: Mapping[str, Any], declared: Shape | None) -> Shape:
    raise NotImplementedError("custom_call")  # TODO(#2): being written


def dot(operands: Sequence[Shape], attrs: Mapping[str, Any], declared: Shape | None) -> Shape:
    raise NotImplementedError("dot")  # TODO(#2): being written


def dynamic_slice(operands: Sequence[Shape], attrs: Mapping[str, Any], declared: Shape | None) -> Shape:
    raise NotImplementedError("dynamic_slice")  # TODO(#2): being written


def dynamic_update_slice(operands: Sequence[Shape], attrs: Mapping[str, Any], declared: Shape | None) -> Shape:
    raise NotImplementedError("dynamic_update_slice")  # TODO(#2): being written


def fft(operands: Sequence[Shape], attrs: Mapping[str, Any], declared: Shape | None) -> Shape:
    raise NotImplementedError("fft")  # TODO(#2): being written


def gather(operands: Sequence[Shape], attrs: Mapping[str, Any], declared: Shape | None) -> Shape:
    raise NotImplementedError("gather")  # TODO(#2): being written


def get_tuple_element(operands: Sequence[Shape], attrs: Mapping[str, Any], declared: Shape | None) -> Shape:
    raise NotImplementedError("get_tuple_element")  # TODO(#2): being written


def iota(operands: Sequence[Shape], attrs: Mapping[str, Any], declared: Shape | None) -> Shape:
    raise NotImplementedError("iota")  # TODO(#2): being written


def is_finite(operands: Sequence[Shape], attrs: Mapping[str, Any], declared: Shape | None) -> Shape:
    raise NotImplementedError("is_finite")  # TODO(#2): being written


def map_(operands: Sequence[Shape], attrs: Mapping[str, Any], declared: Shape | None) -> Shape:
    raise NotImplementedError("map_")  # TODO(#2): being written


def pad(operands: Sequence[Shape], attrs: Mapping[str, Any], declared: Shape | None) -> Shape:
    raise NotImplementedError("pad")  # TODO(#2): being written


def parameter(operands: Sequence[Shape], attrs: Mapping[str, Any], declared: Shape | None) -> Shape:
    raise NotImplementedError("parameter")  # TODO(#2): being written


def real_imag(operands: Sequence[Shape], attrs: Mapping[str, Any], declared: Shape | None) -> Shape:
    raise NotImplementedError("real_imag")  # TODO(#2): being written


def reduce(operands: Sequence[Shape], attrs: Mapping[str, Any], declared: Shape | None) -> Shape:
    raise NotImplementedError("reduce")  # TODO(#2): being written


def reduce_precision(operands: Sequence[Shape], attrs: Mapping[str, Any], declared: Shape | None) -> Shape:
    raise NotImplementedError("reduce_precision")  # TODO(#2): being written


def reduce_window(operands: Sequence[Shape], attrs: Mapping[str, Any], declared: Shape | None) -> Shape:
    raise NotImplementedError("reduce_window")  # TODO(#2): being written


def replica_id(operands: Sequence[Shape], attrs: Mapping[str, Any], declared: Shape | None) -> Shape:
    raise NotImplementedError("replica_id")  # TODO(#2): being written


def reshape(operands: Sequence[Shape], attrs: Mapping[str, Any], declared: Shape | None) -> Shape:
    raise NotImplementedError("reshape")  # TODO(#2): being written


def reverse(operands: Sequence[Shape], attrs: Mapping[str, Any], declared: Shape | None) -> Shape:
    raise NotImplementedError("reverse")  # TODO(#2): being written


def rng(operands: Sequence[Shape], attrs: Mapping[str, Any], declared: Shape | None) -> Shape:
    raise NotImplementedError("rng")  # TODO(#2): being written


def rng_bit_generator(operands: Sequence[Shape], attrs: Mapping[str, Any], declared: Shape | None) -> Shape:
    raise NotImplementedError("rng_bit_generator")  # TODO(#2): being written


def scatter(operands: Sequence[Shape], attrs: Mapping[str, Any], declared: Shape | None) -> Shape:
    raise NotImplementedError("scatter")  # TODO(#2): being written


def select(operands: Sequence[Shape], attrs: Mapping[str, Any], declared: Shape | None) -> Shape:
    raise NotImplementedError("select")  # TODO(#2): being written


def select_and_scatter(operands: Sequence[Shape], attrs: Mapping[str, Any], declared: Shape | None) -> Shape:
    raise NotImplementedError("select_and_scatter")  # TODO(#2): being written


def slice_(operands: Sequence[Shape], attrs: Mapping[str, Any], declared: Shape | None) -> Shape:
    raise NotImplementedError("slice_")  # TODO(#2): being written


def sort(operands: Sequence[Shape], attrs: Mapping[str, Any], declared: Shape | None) -> Shape:
    raise NotImplementedError("sort")  # TODO(#2): being written


def topk(operands: Sequence[Shape], attrs: Mapping[str, Any], declared: Shape | None) -> Shape:
    raise NotImplementedError("topk")  # TODO(#2): being written


def transpose(operands: Sequence[Shape], attrs: Mapping[str, Any], declared: Shape | None) -> Shape:
    raise NotImplementedError("transpose")  # TODO(#2): being written


def triangular_solve(operands: Sequence[Shape], attrs: Mapping[str, Any], declared: Shape | None) -> Shape:
    raise NotImplementedError("triangular_solve")  # TODO(#2): being written


def tuple_(operands: Sequence[Shape], attrs: Mapping[str, Any], declared: Shape | None) -> Shape:
    raise NotImplementedError("tuple_")  # TODO(#2): being written


def unary_float(operands: Sequence[Shape], attrs: Mapping[str, Any], declared: Shape | None) -> Shape:
    raise NotImplementedError("unary_float")  # TODO(#2): being written


def unary_integer(operands: Sequence[Shape], attrs: Mapping[str, Any], declared: Shape | None) -> Shape:
    raise NotImplementedError("unary_integer")  # TODO(#2): being written


def unary_logical(operands: Sequence[Shape], attrs: Mapping[str, Any], declared: Shape | None) -> Shape:
    raise NotImplementedError("unary_logical")  # TODO(#2): being written


def unary_numeric(operands: Sequence[Shape], attrs: Mapping[str, Any], declared: Shape | None) -> Shape:
    raise NotImplementedError("unary_numeric")  # TODO(#2): being written


def while_(operands: Sequence[Shape], attrs: Mapping[str, Any], declared: Shape | None) -> Shape:
    raise NotImplementedError("while_")  # TODO(#2): being written
