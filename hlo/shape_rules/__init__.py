"""Pure shape rules, one module per op family; no IR imports.

Each rule takes the operand shapes, the attributes (called computations given as
`ProgramShape`) and the declared result shape (None when not declared) and returns the
result shape, or raises ShapeError naming the op, the operand shapes and the violated rule.
Rules follow XLA's ShapeInference (modern HLO semantics: explicit broadcasts, so elementwise
operands have identical dimensions). Inferred results carry no layout; a declared shape that
a rule returns as-is keeps its layout. Rules never raise anything but ShapeError, whatever
the attribute values, so the verifier and the builder can call them on untrusted input.
`hlo.shape_inference` gathers every rule into one namespace for the opcode table.
"""
