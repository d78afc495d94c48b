"""Fusion: group producers with their consumers into `fusion` instructions.

Three kinds, as in XLA:
- kLoop: elementwise and data-movement producers fused into an elementwise or movement
  consumer; the fusion computes one output element at a time, so intermediates never
  reach memory.
- kInput: the same producers fused into a `reduce`, which reads each input element once.
- kOutput: a `dot` or `convolution` fused with the elementwise ops that consume its
  result (bias add, activation), when it has no other user.
Then multi-output (sibling) fusion merges two fusions that read the same operand and
iterate over the same space into one tuple-shaped fusion, so the operand is read once.

Clusters grow from a consumer towards its producers, visiting producers in reverse post
order so that every user of a producer that will join the cluster has joined before the
producer is considered. Whether a producer *may* join (`legality`) and whether it
*should* (`profitability`) are separate functions; each decision, positive or not, is
recorded and `explain()` renders them ("not fused: producer dot.1 is an expensive op used
2 times"). A producer with users outside the cluster is duplicated into it only when it is
cheap. Scalar combiner computations (reducers, comparators) are never fused into.
"""

from __future__ import annotations

import heapq
import logging
from dataclasses import dataclass, field
from typing import ClassVar

from compiler.passes.hlo_utils import callers, clone_into, has_side_effects, remove_dead
from compiler.pipeline import computations_to_visit
from hlo.computation import HloComputation
from hlo.instruction import HloInstruction
from hlo.module import HloModule
from hlo.opcodes import Opcode, Trait
from hlo.shape import Shape

log = logging.getLogger(__name__)

# Producers a loop fusion can recompute per output element (besides ELEMENTWISE ops):
# they only re-index their operand.
_MOVEMENT = frozenset({
    Opcode.BROADCAST, Opcode.RESHAPE, Opcode.TRANSPOSE, Opcode.SLICE, Opcode.REVERSE,
    Opcode.PAD, Opcode.CONCATENATE, Opcode.BITCAST, Opcode.IOTA,
})
_OUTPUT_FUSIBLE = frozenset({Opcode.DOT, Opcode.CONVOLUTION})
# Instructions that call these computations as scalar combiners, not as code to fuse.
_CONTROL_CALLERS = frozenset({Opcode.WHILE, Opcode.CONDITIONAL, Opcode.CALL})


@dataclass(frozen=True)
class FusionOptions:
    """Knobs of the fusion pass.

    Attributes:
        max_instructions: a cluster stops growing at this many instructions.
        output_fusion: fuse dot/convolution with their elementwise consumers (kOutput).
        multi_output: merge sibling fusions that read the same operand.
    """

    max_instructions: int = 96
    output_fusion: bool = True
    multi_output: bool = True


@dataclass
class FusionDecision:
    """One decision: what was (not) fused into what, and why."""

    producer: str
    consumer: str
    verdict: str  # "fused", "duplicated", "not fused", "merged", "not merged"
    reason: str

    def __str__(self) -> str:
        return f"{self.verdict}: {self.producer} into {self.consumer}: {self.reason}"


@dataclass
class _Cluster:
    root: HloInstruction
    members: dict[int, HloInstruction]
    has_dot: bool = False
    # Members that also stay outside (duplicated): their operands stay needed outside too.
    duplicated: set[int] = field(default_factory=set)

    def __contains__(self, instr: HloInstruction) -> bool:
        return id(instr) in self.members

    def outside_users(self, producer: HloInstruction) -> list[HloInstruction]:
        """Users that will still read `producer` after fusion: non-members, and members
        that are duplicated (they stay outside as well)."""
        return [u for u in producer.users if u not in self or id(u) in self.duplicated]


def loop_fusible(instr: HloInstruction) -> bool:
    """An op a fusion can compute per element: elementwise, re-indexing, scalar constant."""
    if instr.opcode is Opcode.CONSTANT:
        return instr.shape.is_array and instr.shape.rank == 0
    return instr.has(Trait.ELEMENTWISE) or instr.opcode in _MOVEMENT


def can_root(instr: HloInstruction) -> bool:
    """Whether a cluster may grow from `instr` (its output becomes the fusion's)."""
    if has_side_effects(instr) or instr.opcode in (Opcode.CONSTANT, Opcode.IOTA):
        return False
    if instr.opcode is Opcode.REDUCE:
        return True
    return loop_fusible(instr) and instr.shape.is_array


def _downstream(producer: HloInstruction, cluster: _Cluster) -> list[HloInstruction]:
    """Members of `cluster` that depend on `producer` (its users, their users, ...)."""
    found: list[HloInstruction] = []
    seen: set[int] = set()
    stack = [u for u in producer.users if u in cluster]
    while stack:
        instr = stack.pop()
        if id(instr) in seen:
            continue
        seen.add(id(instr))
        found.append(instr)
        stack.extend(u for u in instr.users if u in cluster)
    return found


def legality(producer: HloInstruction, cluster: _Cluster,
             options: FusionOptions) -> str | None:
    """Why `producer` may not join `cluster` (None: it may)."""
    if producer.shape.is_tuple or not producer.shape.is_array:
        return "it produces a tuple or token"
    if has_side_effects(producer):
        return "it has side effects"
    member_users = [u for u in producer.users if u in cluster]
    if any(u.opcode in _OUTPUT_FUSIBLE for u in member_users):
        return "operands of a dot/convolution stay materialised (the kernel reads them often)"
    if producer.opcode in _OUTPUT_FUSIBLE:
        return _output_fusion_legality(producer, cluster, options)
    if not loop_fusible(producer):
        return f"{producer.opcode.value} is not fusible into a loop"
    return None


def _output_fusion_legality(producer: HloInstruction, cluster: _Cluster,
                            options: FusionOptions) -> str | None:
    if not options.output_fusion:
        return "output fusion is disabled"
    if cluster.has_dot:
        return "the fusion already contains a dot or convolution"
    if cluster.root.opcode is Opcode.REDUCE:
        return "a dot feeding a reduction is not output-fused"
    downstream = _downstream(producer, cluster)
    if any(not u.has(Trait.ELEMENTWISE) for u in downstream):
        return "only elementwise consumers can be output-fused with a dot"
    if cluster.root.shape.dims != producer.shape.dims:
        return "the fusion's output is not shaped like the dot's"
    return None


def profitability(producer: HloInstruction, cluster: _Cluster,
                  options: FusionOptions) -> str | None:
    """Why fusing `producer` into `cluster` would not pay (None: it pays)."""
    outside = cluster.outside_users(producer)
    uses = len(producer.users) + int(producer.is_root)
    expensive = producer.has(Trait.EXPENSIVE)
    if (outside or producer.is_root) and expensive:
        if uses > 1:
            return f"producer is an expensive op used {uses} times (fusing would duplicate it)"
        return (f"producer is expensive and its consumer {outside[0].name} stays outside the "
                "fusion too (fusing would compute it twice)")
    if expensive:
        for member in _downstream(producer, cluster):
            if (member.opcode is Opcode.BROADCAST
                    and member.shape.num_elements > member.operands[0].shape.num_elements):
                return (f"producer is expensive and {member.name} broadcasts it: it would be "
                        "recomputed for every copy")
    if len(cluster.members) >= options.max_instructions:
        return f"the fusion already has {options.max_instructions} instructions"
    return None


def fusion_kind(cluster: _Cluster) -> str:
    if cluster.root.opcode is Opcode.REDUCE:
        return "kInput"
    return "kOutput" if cluster.has_dot else "kLoop"


def fusible_computations(module: HloModule) -> list[HloComputation]:
    """Computations whose code may be fused: not fusions, not scalar combiners."""
    uses = callers(module)
    return [c for c in computations_to_visit(module)
            if c is module.entry or all(u.opcode in _CONTROL_CALLERS
                                        for u in uses.get(id(c), []))]


class InstructionFusion:
    """Loop, input and output fusion, then sibling multi-output fusion (see module doc)."""

    name: ClassVar[str] = "fusion"

    def __init__(self, options: FusionOptions | None = None) -> None:
        self.options = options or FusionOptions()
        self.decisions: list[FusionDecision] = []

    def run(self, module: HloModule) -> bool:
        self.decisions = []
        changed = False
        for comp in fusible_computations(module):
            changed |= self._fuse_computation(comp)
            if self.options.multi_output:
                changed |= _SiblingFusion(self).run(comp)
        if changed:
            module.remove_unreachable_computations()
        return changed

    def explain(self) -> str:
        """Every decision of the last run, one per line."""
        if not self.decisions:
            return ""
        return "\n".join(str(d) for d in self.decisions) + "\n"

    def _note(self, producer: str, consumer: str, verdict: str, reason: str) -> None:
        self.decisions.append(FusionDecision(producer, consumer, verdict, reason))
        log.debug("fusion: %s: %s into %s: %s", verdict, producer, consumer, reason)

    # --- growing clusters ---------------------------------------------------------------------

    def _fuse_computation(self, comp: HloComputation) -> bool:
        order = comp.post_order()
        position = {id(i): k for k, i in enumerate(order)}
        changed = False
        for consumer in reversed(order):
            if consumer.parent is not comp or not can_root(consumer):
                continue
            cluster = self._grow(consumer, position)
            if len(cluster.members) > 1:
                self._materialise(comp, cluster, position)
                changed = True
        return changed

    def _grow(self, root: HloInstruction, position: dict[int, int]) -> _Cluster:
        cluster = _Cluster(root, {id(root): root})
        heap: list[tuple[int, int, HloInstruction]] = []
        pushed: set[int] = set()

        def push_operands(instr: HloInstruction) -> None:
            for o in instr.operands:
                if id(o) not in pushed and id(o) in position:
                    pushed.add(id(o))
                    # Latest in post order first: every user of a producer pops before it.
                    heapq.heappush(heap, (-position[id(o)], id(o), o))

        push_operands(root)
        while heap:
            _, _, producer = heapq.heappop(heap)
            if producer.opcode in (Opcode.PARAMETER, Opcode.GET_TUPLE_ELEMENT, Opcode.TUPLE):
                continue  # inputs of the fusion by nature; nothing to explain
            why_not = legality(producer, cluster, self.options) or profitability(
                producer, cluster, self.options)
            if why_not is not None:
                self._note(producer.name, f"the fusion of {root.name}", "not fused", why_not)
                continue
            outside = cluster.outside_users(producer)
            if outside or producer.is_root:
                cluster.duplicated.add(id(producer))
                users = ", ".join(u.name for u in outside) or "ROOT"
                self._note(producer.name, f"the fusion of {root.name}", "duplicated",
                           f"cheap, and also used by {users}")
            elif producer.opcode is not Opcode.CONSTANT:
                how = ("output fusion" if producer.opcode in _OUTPUT_FUSIBLE
                       else "elementwise or re-indexing producer")
                self._note(producer.name, f"the fusion of {root.name}", "fused", how)
            cluster.members[id(producer)] = producer
            cluster.has_dot |= producer.opcode in _OUTPUT_FUSIBLE
            push_operands(producer)
        return cluster

    def _materialise(self, comp: HloComputation, cluster: _Cluster,
                     position: dict[int, int]) -> HloInstruction:
        members = sorted(cluster.members.values(), key=lambda i: position[id(i)])
        module = comp.parent
        assert module is not None
        fused = HloComputation(module.unique_computation_name("fused_computation"),
                               is_fusion=True)
        module.add_computation(fused)
        params: dict[int, HloInstruction] = {}
        operands: list[HloInstruction] = []
        copies: dict[int, HloInstruction] = {}
        for member in members:
            inputs = []
            for o in member.operands:
                if o in cluster:
                    inputs.append(copies[id(o)])
                    continue
                if id(o) not in params:
                    params[id(o)] = fused.add(Opcode.PARAMETER, shape=o.shape,
                                              name=f"param_{len(operands)}",
                                              parameter_number=len(operands))
                    operands.append(o)
                inputs.append(params[id(o)])
            copies[id(member)] = clone_into(fused, member, inputs)
        fused.set_root(copies[id(cluster.root)])
        kind = fusion_kind(cluster)
        fusion = comp.add(Opcode.FUSION, operands, shape=cluster.root.shape, name="fusion",
                          kind=kind, calls=fused)
        cluster.root.replace_all_uses_with(fusion)
        remove_dead(comp, [cluster.root])
        log.debug("fusion: %s (%s) fuses %s", fusion.name, kind, [m.name for m in members])
        return fusion


class _SiblingFusion:
    """Merges pairs of fusions that read a common operand over the same iteration space."""

    def __init__(self, owner: InstructionFusion) -> None:
        self.owner = owner
        self.tried: set[tuple[str, str]] = set()  # names: unique, unlike ids of dead objects

    def run(self, comp: HloComputation) -> bool:
        changed = False
        while True:
            pair = self._find(comp)
            if pair is None:
                return changed
            self._merge(comp, *pair)
            changed = True

    def _find(self, comp: HloComputation) -> tuple[HloInstruction, HloInstruction] | None:
        for shared in comp.post_order():
            if not shared.shape.is_array or shared.shape.num_elements <= 1:
                continue
            users = [u for u in shared.users if _mergeable(u)]
            for i, a in enumerate(users):
                for b in users[i + 1:]:
                    key = (a.name, b.name)
                    if key in self.tried:
                        continue
                    self.tried.add(key)
                    why_not = _sibling_legality(a, b) or _sibling_profitability(a, b)
                    if why_not is None:
                        self.owner._note(a.name, b.name, "merged",
                                         f"siblings that both read {shared.name}")
                        return a, b
                    self.owner._note(a.name, b.name, "not merged", why_not)
        return None

    def _merge(self, comp: HloComputation, a: HloInstruction, b: HloInstruction) -> None:
        module = comp.parent
        assert module is not None
        fused = HloComputation(module.unique_computation_name("fused_computation"),
                               is_fusion=True)
        module.add_computation(fused)
        params: dict[int, HloInstruction] = {}
        operands: list[HloInstruction] = []
        roots = []
        for f in (a, b):
            inner = f.attrs["calls"]
            copies: dict[int, HloInstruction] = {}
            for p in inner.parameters:
                outer = f.operands[p.attrs["parameter_number"]]
                if id(outer) not in params:
                    params[id(outer)] = fused.add(Opcode.PARAMETER, shape=outer.shape,
                                                  name=f"param_{len(operands)}",
                                                  parameter_number=len(operands))
                    operands.append(outer)
                copies[id(p)] = params[id(outer)]
            for instr in inner.root.walk_operands():
                if id(instr) not in copies:
                    copies[id(instr)] = clone_into(fused, instr,
                                                   [copies[id(o)] for o in instr.operands])
            roots.append(copies[id(inner.root)])
        shape = Shape.tuple_of([a.shape, b.shape])
        fused.set_root(fused.add(Opcode.TUPLE, roots, shape=shape))
        kind = "kInput" if "kInput" in (a.attrs["kind"], b.attrs["kind"]) else "kLoop"
        merged = comp.add(Opcode.FUSION, operands, shape=shape, name="fusion", kind=kind,
                          calls=fused)
        for index, f in enumerate((a, b)):
            part = comp.add(Opcode.GET_TUPLE_ELEMENT, [merged], index=index)
            f.replace_all_uses_with(part)
            comp.remove(f)
        log.debug("fusion: merged siblings %s and %s into %s", a.name, b.name, merged.name)


def _mergeable(instr: HloInstruction) -> bool:
    return (instr.opcode is Opcode.FUSION and instr.attrs.get("kind") in ("kLoop", "kInput")
            and instr.shape.is_array)


def _depends_on(user: HloInstruction, producer: HloInstruction) -> bool:
    return any(i is producer for i in user.walk_operands() if i is not user)


def _sibling_legality(a: HloInstruction, b: HloInstruction) -> str | None:
    if _depends_on(a, b) or _depends_on(b, a):
        return "one depends on the other (merging would create a cycle)"
    return None


def _iteration_space(f: HloInstruction) -> tuple[object, ...]:
    root = f.attrs["calls"].root
    if root.opcode is Opcode.REDUCE:
        return ("reduce", root.operands[0].shape.dims, tuple(root.attrs["dimensions"]))
    return ("loop", f.shape.dims)


def _sibling_profitability(a: HloInstruction, b: HloInstruction) -> str | None:
    if _iteration_space(a) != _iteration_space(b):
        return "they iterate over different shapes, so one loop cannot compute both"
    return None
