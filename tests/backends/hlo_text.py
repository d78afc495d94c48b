"""HLO text fragments shared by the CPU and GPU backend tests: scalar computations to pass
as `to_apply` / `comparator`, written once so both backends are tested on the same IR."""

from __future__ import annotations

# (value, index) argmax combiner for a variadic reduce: the larger value wins, ties go to
# the smaller index, so the result matches numpy's argmax.
ARGMAX = """argmax {
  v0 = f32[] parameter(0)
  i0 = s32[] parameter(1)
  v1 = f32[] parameter(2)
  i1 = s32[] parameter(3)
  gt = pred[] compare(v0, v1), direction=GT
  eq = pred[] compare(v0, v1), direction=EQ
  lt = pred[] compare(i0, i1), direction=LT
  tie = pred[] and(eq, lt)
  pick = pred[] or(gt, tie)
  v = f32[] select(pick, v0, v1)
  i = s32[] select(pick, i0, i1)
  ROOT r = (f32[], s32[]) tuple(v, i)
}

"""


def scalar_computation(name: str, dtype: str, op: str) -> str:
    """`name(a, b) = op(a, b)` on `dtype` scalars (op an HLO binary opcode)."""
    return (
        f"{name} {{\n  a = {dtype}[] parameter(0)\n  b = {dtype}[] parameter(1)\n"
        f"  ROOT r = {dtype}[] {op}(a, b)\n}}\n\n"
    )


def comparator(name: str, dtypes: list[str], key: int = 0, direction: str = "LT") -> str:
    """A sort comparator over len(dtypes) operands comparing operand `key`."""
    params = []
    for k, dtype in enumerate(dtypes):
        params.append(f"  l{k} = {dtype}[] parameter({2 * k})")
        params.append(f"  r{k} = {dtype}[] parameter({2 * k + 1})")
    root = f"  ROOT c = pred[] compare(l{key}, r{key}), direction={direction}"
    return f"{name} {{\n" + "\n".join(params) + "\n" + root + "\n}\n\n"


__all__ = ["ARGMAX", "comparator", "scalar_computation"]
