"""TF op lowerings, family "graph and control": constants, placeholders, identities,
assertions, variables, function calls, v2 control flow (If/While with function bodies)
and v1 control flow (Switch/Merge conds and Enter/Merge/Switch/NextIteration/Exit loops).

v1 control flow is functionalised on the fly: a cond's Merge becomes an HLO conditional
whose branch computations compute the Merge's inputs from the tensors the branch captures
(Switch inputs and any outer tensor); a loop's Exit becomes (the result of) one HLO while
per frame, whose state is the loop variables, then the loop invariants (Enter with
is_constant) and captures, then the variables (resources) used inside. Captured
constants are inlined so that shape inputs stay constant inside bodies.
"""

from __future__ import annotations

from dataclasses import dataclass

from compiler.frontends.tf_graphdef import (
    CondFrame,
    Context,
    TensorRef,
    TfGraph,
    TfNode,
)
from compiler.frontends.tf_ops import tf_op
from compiler.frontends.tf_scope import INLINE_LIMIT, NodeCtx, Resource, Scope, Slot, Value
from hlo.dtypes import PrimitiveType
from hlo.errors import ImportGraphError, UnsupportedOpError
from hlo.instruction import HloInstruction
from hlo.opcodes import Opcode

_SWITCH = ("Switch", "RefSwitch")
_ENTER = ("Enter", "RefEnter")

# --- constants, placeholders, identities ------------------------------------------------------


@tf_op("Const", outputs=("output",))
def _const(ctx: NodeCtx) -> HloInstruction:
    value = ctx.tensor_attr("value")
    if ctx.has_attr("dtype") and ctx.type_attr("dtype").numpy != value.dtype:
        raise ImportGraphError("the value's type differs from attribute 'dtype'")
    return ctx.hlo.constant(value)


@tf_op("Placeholder", outputs=("output",))
def _placeholder(ctx: NodeCtx) -> None:
    raise ImportGraphError(
        "the placeholder is not fed: add a feed for it to the config (or prune it away)"
    )


@tf_op("PlaceholderWithDefault", outputs=("output",))
def _placeholder_with_default(ctx: NodeCtx) -> HloInstruction:
    return ctx.input(0)


@tf_op("Identity", "Snapshot", outputs=("output",))
def _identity(ctx: NodeCtx) -> Value:
    ctx.expect_inputs(1)
    v = ctx.raw_input(0)
    if isinstance(v, Resource) and not v.is_ref:
        return v  # an Identity of a resource handle forwards the handle
    return ctx.input(0)


@tf_op("StopGradient", "PreventGradient", "CheckNumerics", "EnsureShape", outputs=("output",))
def _forward(ctx: NodeCtx) -> HloInstruction:
    return ctx.input(0)


@tf_op("IdentityN", outputs=("output",))
def _identity_n(ctx: NodeCtx) -> list[Value]:
    return [ctx.raw_input(i) if isinstance(ctx.raw_input(i), Resource) else ctx.input(i)
            for i in range(ctx.num_inputs)]


def _no_deps(scope: Scope, node: TfNode) -> list[TensorRef]:
    return []


@tf_op("NoOp", "Assert", "Print", "PrintV2", deps=_no_deps)
def _dropped(ctx: NodeCtx) -> None:
    # Assert and printing are compiled away, as tfcompile does; their inputs are not needed.
    return None


# --- variables --------------------------------------------------------------------------------


@tf_op("VarHandleOp", "VariableV2", "Variable", outputs=("resource",))
def _variable(ctx: NodeCtx) -> Resource:
    importer = ctx.scope.importer
    var = importer.variables.get(ctx.name)
    if var is None or ctx.scope.graph is not importer.graph:
        raise ImportGraphError(
            "the variable is used but not listed in the config's variables; add a "
            f"'variable {{ node_name: \"{ctx.name}\" ... }}' entry"
        )
    from hlo.shape import Shape

    return Resource(ctx.name, Shape.array(var.element_type, var.dims),
                    is_ref=ctx.node.op != "VarHandleOp")


def _resource(ctx: NodeCtx, i: int = 0) -> Resource:
    v = ctx.raw_input(i)
    if not isinstance(v, Resource):
        raise ImportGraphError(f"input {i} must be a variable handle")
    return v


def _check_dtype(ctx: NodeCtx, res: Resource, attr: str) -> None:
    if ctx.has_attr(attr) and ctx.type_attr(attr) is not res.shape.element_type:
        raise ImportGraphError(
            f"attribute {attr!r} is {ctx.type_attr(attr).value}, but {res} holds "
            f"{res.shape.element_type.value}"
        )


@tf_op("ReadVariableOp", outputs=("value",))
def _read_variable(ctx: NodeCtx) -> HloInstruction:
    res = _resource(ctx)
    _check_dtype(ctx, res, "dtype")
    return ctx.scope.read_var(res)


@tf_op("AssignVariableOp", "AssignAddVariableOp", "AssignSubVariableOp")
def _assign_variable(ctx: NodeCtx) -> None:
    ctx.expect_inputs(2)
    res = _resource(ctx)
    _check_dtype(ctx, res, "dtype")
    ctx.scope.assign_var(res, _updated(ctx, res), str(ctx.node))
    return None


@tf_op("Assign", "AssignAdd", "AssignSub", outputs=("output_ref",))
def _assign_ref(ctx: NodeCtx) -> HloInstruction:
    ctx.expect_inputs(2)
    res = _resource(ctx)
    new = _updated(ctx, res)
    ctx.scope.assign_var(res, new, str(ctx.node))
    return new


def _updated(ctx: NodeCtx, res: Resource) -> HloInstruction:
    value = ctx.input(1)
    if ctx.node.op in ("AssignVariableOp", "Assign"):
        return value
    opcode = Opcode.ADD if ctx.node.op.startswith("AssignAdd") else Opcode.SUBTRACT
    old = ctx.scope.read_var(res)
    return ctx.hlo.add(opcode, [old, ctx.hlo.broadcast_to(value, old.shape.dims)])


@tf_op("VarIsInitializedOp", "IsVariableInitialized", deps=_no_deps)
def _is_initialized(ctx: NodeCtx) -> HloInstruction:
    # Config variables are arguments: always initialised when the function runs.
    return ctx.hlo.scalar(True, PrimitiveType.PRED)


# --- function calls and v2 control flow -------------------------------------------------------


def _raw_inputs(ctx: NodeCtx, start: int = 0) -> list[Value]:
    values: list[Value] = []
    for i in range(start, ctx.num_inputs):
        v = ctx.raw_input(i)
        if v is None:
            raise ImportGraphError(f"input {i} has no value (a control-only node)")
        values.append(v)
    return values


def _function(ctx: NodeCtx, name: str, count: int) -> TfGraph:
    graph = ctx.scope.importer.function_graph(name)
    if len(graph.args) != count:
        raise ImportGraphError(
            f"function {name!r} takes {len(graph.args)} argument(s), the node passes {count}"
        )
    return graph


def _inlinable(scope: Scope, v: Value) -> bool:
    if not isinstance(v, HloInstruction):
        return False
    folded = scope.hlo.constant_value(v)
    return folded is not None and folded.size <= INLINE_LIMIT


def _arg_slots(graph: TfGraph, args: list[Value]) -> list[Slot]:
    """One slot per function argument; constant arguments may be inlined."""
    return [Slot([TensorRef(a, 0)], v, inline=True) for a, v in zip(graph.args, args, strict=True)]


def call_function(ctx: NodeCtx, name: str, args: list[Value]) -> list[HloInstruction]:
    """An HLO call of library function `name` on `args` (constant arguments are inlined)."""
    scope = ctx.scope
    importer = scope.importer
    graph = _function(ctx, name, len(args))
    if name in importer.call_stack:
        raise UnsupportedOpError(f"function {name!r} calls itself (recursion)")
    importer.call_stack.append(name)
    try:
        slots = _arg_slots(graph, args)
        built = scope.sub_computation(name, graph, (), slots, graph.outputs,
                                      control_outputs=graph.control_outputs)
    finally:
        importer.call_stack.pop()
    call = ctx.hlo.add(Opcode.CALL, [ctx.hlo.tuple(built.operands)], to_apply=built.comp)
    return scope.finish_call(built, call, len(graph.outputs))


def lower_function_call(ctx: NodeCtx) -> list[HloInstruction]:
    """A node whose op is a library function (Defun style)."""
    return call_function(ctx, ctx.node.op, _raw_inputs(ctx))


@tf_op("PartitionedCall", "StatefulPartitionedCall", outputs=("output",))
def _partitioned_call(ctx: NodeCtx) -> list[HloInstruction]:
    return call_function(ctx, ctx.func_attr("f"), _raw_inputs(ctx))


def _as_predicate(ctx: NodeCtx, x: HloInstruction) -> HloInstruction:
    if x.shape.rank != 0:
        raise ImportGraphError(
            f"the predicate must be a scalar, got {x.shape.to_text(with_layout=False)}"
        )
    return ctx.hlo.convert(x, PrimitiveType.PRED)


@tf_op("If", "StatelessIf", outputs=("output",))
def _if(ctx: NodeCtx) -> list[HloInstruction]:
    scope = ctx.scope
    pred = _as_predicate(ctx, ctx.input(0))
    args = _raw_inputs(ctx, 1)
    branches = []
    count = 0
    for attr in ("then_branch", "else_branch"):
        name = ctx.func_attr(attr)
        graph = _function(ctx, name, len(args))
        slots = _arg_slots(graph, args)
        count = len(graph.outputs)
        branches.append(scope.sub_computation(f"{name}", graph, (), slots, graph.outputs,
                                              control_outputs=graph.control_outputs))
    then, other = branches
    cond = ctx.hlo.add(
        Opcode.CONDITIONAL,
        [pred, ctx.hlo.tuple(then.operands), ctx.hlo.tuple(other.operands)],
        true_computation=then.comp,
        false_computation=other.comp,
    )
    return scope.finish_call(then, cond, count)


@tf_op("While", "StatelessWhile", outputs=("output",))
def _while(ctx: NodeCtx) -> list[Value]:
    scope = ctx.scope
    args = _raw_inputs(ctx)
    cond_graph = _function(ctx, ctx.func_attr("cond"), len(args))
    body_graph = _function(ctx, ctx.func_attr("body"), len(args))
    if len(body_graph.outputs) != len(args):
        raise ImportGraphError(
            f"the body returns {len(body_graph.outputs)} values for {len(args)} loop variables"
        )
    state: list[int] = []
    inline: list[int] = []
    resources: list[int] = []
    for i, v in enumerate(args):
        if isinstance(v, Resource):
            resources.append(i)
        elif body_graph.outputs[i] == TensorRef(body_graph.args[i], 0) and _inlinable(scope, v):
            inline.append(i)  # a constant the body passes through: inline it
        else:
            state.append(i)
    order = state + inline + resources

    def slots(graph: TfGraph) -> list[Slot]:
        return [Slot([TensorRef(graph.args[i], 0)], args[i], inline=i in inline) for i in order]

    cond = scope.sub_computation(f"{ctx.func_attr('cond')}", cond_graph, (), slots(cond_graph),
                                 cond_graph.outputs[:1], single_root=True)
    body = scope.sub_computation(f"{ctx.func_attr('body')}", body_graph, (), slots(body_graph),
                                 [body_graph.outputs[i] for i in state])
    _check_loop_condition(cond.comp.root)
    loop = ctx.hlo.add(Opcode.WHILE, [ctx.hlo.tuple(body.operands)],
                       condition=cond.comp, body=body.comp)
    outs: list[Value] = list(args)
    for k, i in enumerate(state):
        outs[i] = ctx.hlo.gte(loop, k)
    for k, res in enumerate(body.resources):
        scope.var_values[res.key] = ctx.hlo.gte(loop, len(state) + k)
    return outs


def _check_loop_condition(root: HloInstruction | None) -> None:
    if root is None or root.shape.element_type is not PrimitiveType.PRED or root.shape.rank:
        shape = root.shape.to_text(with_layout=False) if root is not None else "nothing"
        raise ImportGraphError(f"the loop condition must return a bool scalar, got {shape}")


# --- v1 control flow: captures ----------------------------------------------------------------


def find_captures(
    graph: TfGraph, context: Context, outputs: list[TensorRef], bound: set[TensorRef]
) -> list[tuple[TensorRef, TensorRef]]:
    """The (inner tensor, outer tensor) pairs a computation of `outputs` in `context` needs
    from outside: a cond Switch output entering the branch is its data input; any other
    tensor produced outside `context` is itself."""
    depth = len(context)

    def inside(name: str) -> bool:
        return graph.context(name)[:depth] == context

    captures: list[tuple[TensorRef, TensorRef]] = []
    seen_refs: set[TensorRef] = set()
    seen_nodes: set[str] = set()
    stack: list[TensorRef | str] = list(outputs)
    while stack:
        item = stack.pop()
        if isinstance(item, TensorRef):
            if item in bound or item in seen_refs:
                continue
            seen_refs.add(item)
            node = graph.node(item.node)
            if inside(node.name):
                stack.append(node.name)
            elif (node.op in _SWITCH and not graph.is_loop_switch(node)
                  and graph.out_context(item)[:depth] == context):
                captures.append((item, node.inputs[0]))
            else:
                captures.append((item, item))
        elif item not in seen_nodes:
            seen_nodes.add(item)
            node = graph.node(item)
            stack.extend(node.inputs)
            stack.extend(c for c in node.controls if inside(c))
    return captures


def _capture_slots(
    scope: Scope, captures: list[tuple[TensorRef, TensorRef]]
) -> tuple[list[Slot], list[Slot]]:
    """Slots for captures, grouped by outer tensor: (tensor slots, resource slots)."""
    by_outer: dict[TensorRef, Slot] = {}
    for inner, outer in captures:
        slot = by_outer.get(outer)
        if slot is None:
            value = scope.value(outer)
            slot = Slot([], value, inline=True)
            by_outer[outer] = slot
        slot.refs.append(inner)
    tensors = [s for s in by_outer.values() if not isinstance(s.value, Resource)]
    resources = [s for s in by_outer.values() if isinstance(s.value, Resource)]
    return tensors, resources


# --- v1 control flow: conds -------------------------------------------------------------------


@dataclass(slots=True)
class _CondPlan:
    pred: TensorRef
    branches: list[tuple[int, TensorRef, Context, list[tuple[TensorRef, TensorRef]]]]


def _cond_plan(scope: Scope, node: TfNode) -> _CondPlan:
    key = ("cond", node.name)
    found = scope.memo.get(key)
    if isinstance(found, _CondPlan):
        return found
    graph = scope.graph
    branches = []
    preds: set[TensorRef] = set()
    for ref in node.inputs:
        ctx = graph.out_context(ref)
        frame = ctx[-1] if ctx else None
        if not isinstance(frame, CondFrame):
            raise ImportGraphError(f"{node}: input {ref} does not come from a cond branch")
        preds.add(frame.pred)
        captures = find_captures(graph, ctx, [ref], set())
        branches.append((frame.branch, ref, ctx, captures))
    if len(preds) != 1 or sorted(b for b, _, _, _ in branches) != [0, 1]:
        raise UnsupportedOpError(
            "only Merges of the two branches of one tf.cond are supported"
        )
    plan = _CondPlan(preds.pop(), branches)
    scope.memo[key] = plan
    return plan


def _is_loop_merge(graph: TfGraph, node: TfNode) -> bool:
    return any(graph.node(r.node).op in (*_ENTER, "NextIteration") for r in node.inputs)


def _merge_deps(scope: Scope, node: TfNode) -> list[TensorRef]:
    if _is_loop_merge(scope.graph, node):
        return []
    plan = _cond_plan(scope, node)
    return [plan.pred] + [outer for _, _, _, caps in plan.branches for _, outer in caps]


@tf_op("Merge", "RefMerge", outputs=("output", "value_index"), deps=_merge_deps)
def _merge(ctx: NodeCtx) -> list[HloInstruction]:
    scope = ctx.scope
    if _is_loop_merge(scope.graph, ctx.node):
        raise ImportGraphError("a loop Merge reached outside its loop")
    plan = _cond_plan(scope, ctx.node)
    pred_value = scope.value(plan.pred)
    if not isinstance(pred_value, HloInstruction):
        raise ImportGraphError("the cond predicate has no value")
    pred = _as_predicate(ctx, pred_value)
    resource_keys: dict[str, Resource] = {}
    per_branch = {}
    for branch, ref, context, captures in plan.branches:
        tensors, res_slots = _capture_slots(scope, captures)
        per_branch[branch] = (ref, context, tensors, res_slots)
        for s in res_slots:
            assert isinstance(s.value, Resource)
            resource_keys.setdefault(s.value.key, s.value)
    built = {}
    for branch, (ref, context, tensors, res_slots) in per_branch.items():
        refs = {s.value.key: s.refs for s in res_slots if isinstance(s.value, Resource)}
        resources = [Slot(refs.get(k, []), r) for k, r in resource_keys.items()]
        name = f"{ctx.name}_{'true' if branch else 'false'}".replace("/", "_")
        built[branch] = scope.sub_computation(name, scope.graph, context, tensors + resources,
                                              [ref])
    cond = ctx.hlo.add(
        Opcode.CONDITIONAL,
        [pred, ctx.hlo.tuple(built[1].operands), ctx.hlo.tuple(built[0].operands)],
        true_computation=built[1].comp,
        false_computation=built[0].comp,
    )
    (value,) = scope.finish_call(built[1], cond, 1)
    index_of = {branch: i for i, (branch, _, _, _) in enumerate(plan.branches)}
    value_index = ctx.hlo.select(pred, ctx.hlo.scalar(index_of[1], PrimitiveType.S32),
                                 ctx.hlo.scalar(index_of[0], PrimitiveType.S32))
    return [value, value_index]


@tf_op("Switch", "RefSwitch", outputs=("output_false", "output_true"))
def _switch(ctx: NodeCtx) -> None:
    # A Switch's outputs live inside branches or loops; those capture its data input.
    return None


@tf_op("LoopCond", outputs=("output",))
def _loop_cond(ctx: NodeCtx) -> HloInstruction:
    return ctx.input(0)


@tf_op("NextIteration", "RefNextIteration", outputs=("output",))
def _next_iteration(ctx: NodeCtx) -> HloInstruction:
    return ctx.input(0)


@tf_op("Enter", "RefEnter", outputs=("output",))
def _enter(ctx: NodeCtx) -> None:
    raise ImportGraphError("an Enter reached outside the while loop it belongs to")


# --- v1 control flow: loops -------------------------------------------------------------------


@dataclass(slots=True)
class _LoopVar:
    enter: TfNode
    merge: TfNode
    switch: TfNode
    next_iteration: TfNode


@dataclass(slots=True)
class _LoopPlan:
    frame: str
    context: Context
    variables: list[_LoopVar]
    invariants: list[TfNode]
    condition: TensorRef
    captures: list[tuple[TensorRef, TensorRef]]


def _frame_name(node: TfNode) -> str:
    return bytes(node.attr["frame_name"].s).decode("utf-8", "replace")


def _only(items: list[TfNode], what: str, where: TfNode) -> TfNode:
    if len(items) != 1:
        raise ImportGraphError(f"{where}: expected one {what}, found {len(items)}")
    return items[0]


def _loop_plan(scope: Scope, exit_node: TfNode) -> _LoopPlan:
    graph = scope.graph
    if len(exit_node.inputs) != 1:
        raise ImportGraphError(f"{exit_node}: Exit takes one input")
    switch = graph.node(exit_node.inputs[0].node, str(exit_node))
    if not graph.is_loop_switch(switch):
        raise ImportGraphError(f"{exit_node}: its input is not the Switch of a while loop")
    merge = graph.node(switch.inputs[0].node, str(switch))
    enters = [graph.node(r.node) for r in merge.inputs if graph.node(r.node).op in _ENTER]
    frame = _frame_name(_only(enters, "Enter input", merge))
    key = ("loop", frame)
    found = scope.memo.get(key)
    if isinstance(found, _LoopPlan):
        return found
    body_context = graph.context(merge.name)
    variables: list[_LoopVar] = []
    invariants: list[TfNode] = []
    for node in graph.nodes.values():
        if node.op not in _ENTER or _frame_name(node) != frame:
            continue
        if graph.context(node.name) != body_context:
            continue
        if node.attr["is_constant"].b:
            invariants.append(node)
            continue
        users = [graph.node(n) for n, _ in graph.consumers(node.name)]
        m = _only([u for u in users if u.op in ("Merge", "RefMerge")], "Merge", node)
        nexts = [graph.node(r.node) for r in m.inputs if graph.node(r.node).op != node.op]
        n = _only([x for x in nexts if x.op in ("NextIteration", "RefNextIteration")],
                  "NextIteration input", m)
        switches = [graph.node(c) for c, i in graph.consumers(m.name) if i == 0]
        s = _only([x for x in switches if graph.is_loop_switch(x)], "loop Switch", m)
        variables.append(_LoopVar(node, m, s, n))
    conds = {v.switch.inputs[1].node for v in variables}
    if len(conds) != 1:
        raise ImportGraphError(f"while loop {frame!r}: its Switches disagree on the LoopCond")
    loop_cond = graph.node(conds.pop())
    if len(loop_cond.inputs) != 1:
        raise ImportGraphError(f"{loop_cond}: LoopCond takes one input")
    condition = loop_cond.inputs[0]
    bound = {TensorRef(v.merge.name, 0) for v in variables}
    bound |= {TensorRef(v.switch.name, 1) for v in variables}
    bound |= {TensorRef(e.name, 0) for e in invariants}
    for v in variables:
        if len(v.next_iteration.inputs) != 1:
            raise ImportGraphError(f"{v.next_iteration}: NextIteration takes one input")
    outputs = [condition] + [v.next_iteration.inputs[0] for v in variables]
    captures = find_captures(graph, body_context, outputs, bound)
    plan = _LoopPlan(frame, body_context, variables, invariants, condition, captures)
    scope.memo[key] = plan
    return plan


def _exit_deps(scope: Scope, node: TfNode) -> list[TensorRef]:
    plan = _loop_plan(scope, node)
    refs = [v.enter.inputs[0] for v in plan.variables]
    refs += [e.inputs[0] for e in plan.invariants]
    return refs + [outer for _, outer in plan.captures]


@tf_op("Exit", "RefExit", outputs=("output",), deps=_exit_deps)
def _exit(ctx: NodeCtx) -> HloInstruction:
    scope = ctx.scope
    plan = _loop_plan(scope, ctx.node)
    key = ("while", plan.frame)
    loop = scope.memo.get(key)
    if loop is None:
        loop = _build_loop(ctx, plan)
        scope.memo[key] = loop
    switch = ctx.node.inputs[0].node
    for k, var in enumerate(plan.variables):
        if var.switch.name == switch:
            return ctx.hlo.gte(loop, k)
    raise ImportGraphError("the Exit's Switch is not one of its loop's variables")


def _build_loop(ctx: NodeCtx, plan: _LoopPlan) -> HloInstruction:
    """One HLO while for loop frame `plan.frame`; returns the while instruction."""
    scope = ctx.scope
    state: list[Slot] = []
    for var in plan.variables:
        init = scope.value(var.enter.inputs[0])
        if not isinstance(init, HloInstruction):
            raise UnsupportedOpError(f"loop variable {var.enter.name!r} is not a tensor")
        refs = [TensorRef(var.merge.name, 0), TensorRef(var.switch.name, 1)]
        state.append(Slot(refs, init))
    outer: list[Slot] = [Slot([TensorRef(e.name, 0)], scope.value(e.inputs[0]), inline=True)
                         for e in plan.invariants]
    tensors, resources = _capture_slots(scope, plan.captures)
    outer += tensors
    inlined = [s for s in outer if _inlinable(scope, s.value)]
    inlined_ids = {id(s) for s in inlined}
    passed = [s for s in outer if isinstance(s.value, HloInstruction) and id(s) not in inlined_ids]
    resources += [s for s in outer if isinstance(s.value, Resource)]
    for s in passed:
        s.inline = False
    slots = state + passed + inlined + resources
    name = plan.frame.replace("/", "_") or "while"
    cond = scope.sub_computation(f"{name}_cond", scope.graph, plan.context, slots,
                                 [plan.condition], single_root=True)
    _check_loop_condition(cond.comp.root)
    body_outputs = [v.next_iteration.inputs[0] for v in plan.variables]
    body_outputs += [s.refs[0] for s in passed]
    body = scope.sub_computation(f"{name}_body", scope.graph, plan.context, slots, body_outputs)
    loop = ctx.hlo.add(Opcode.WHILE, [ctx.hlo.tuple(body.operands)],
                       condition=cond.comp, body=body.comp)
    base = len(state) + len(passed)
    for k, res in enumerate(body.resources):
        scope.var_values[res.key] = ctx.hlo.gte(loop, base + k)
    return loop
