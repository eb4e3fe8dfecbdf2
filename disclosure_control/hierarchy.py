"""Dimension hierarchies: each code's parent, so that every total in a table is a declared sum.

A hierarchy maps each parent to its children with `Total` as the root ({"Total": ["D01", "D02"], "D01":
["D01S001", ...]}); a dimension without one is flat (Total over its codes). Leaves are the codes that occur in
the data; every other node is a total the engine computes.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

ROOT = "Total"


class HierarchyError(ValueError):
    """A hierarchy that is not a tree over the data's codes; the message says where."""


@dataclass(frozen=True)
class Hierarchy:
    dimension: str
    parent_of: tuple[tuple[str, str], ...]  # (child, parent) pairs

    @classmethod
    def flat(cls, dimension: str, codes) -> "Hierarchy":
        return cls.from_children(dimension, {ROOT: sorted(set(codes) - {ROOT})})

    @classmethod
    def from_children(cls, dimension: str, children: dict[str, list[str]]) -> "Hierarchy":
        if ROOT not in children:
            raise HierarchyError(f"hierarchy for {dimension}: the root must be {ROOT!r}")
        pairs, seen = [], {ROOT}
        for parent, kids in children.items():
            if not isinstance(kids, list) or not kids:
                raise HierarchyError(f"hierarchy for {dimension}: {parent!r} must map to a non-empty list of codes")
            for kid in kids:
                kid = str(kid)
                if kid in seen:
                    raise HierarchyError(f"hierarchy for {dimension}: {kid!r} appears twice (or is the root)")
                seen.add(kid)
                pairs.append((kid, str(parent)))
        hierarchy = cls(dimension, tuple(pairs))
        orphans = [p for p in children if p != ROOT and p not in hierarchy.parents]
        if orphans:
            raise HierarchyError(f"hierarchy for {dimension}: {orphans[0]!r} has children but no parent")
        return hierarchy

    @cached_property
    def parents(self) -> dict[str, str]:
        return dict(self.parent_of)

    @cached_property
    def children(self) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        for child, parent in self.parent_of:
            out.setdefault(parent, []).append(child)
        return out

    @cached_property
    def nodes(self) -> list[str]:
        """Root first, then breadth first: totals come before their parts."""
        order, queue = [], [ROOT]
        while queue:
            node = queue.pop(0)
            order.append(node)
            queue.extend(self.children.get(node, []))
        return order

    @cached_property
    def leaves(self) -> list[str]:
        return [n for n in self.nodes if n not in self.children]

    def ancestors(self, node: str) -> list[str]:
        """The node itself and every total above it, up to the root."""
        chain = [node]
        while chain[-1] != ROOT:
            chain.append(self.parents[chain[-1]])
        return chain

    def depth(self, node: str) -> int:
        return len(self.ancestors(node)) - 1

    def check_covers(self, codes) -> None:
        missing = sorted(set(codes) - set(self.leaves))
        if missing:
            raise HierarchyError(
                f"hierarchy for {self.dimension} does not cover code {missing[0]!r}"
                + (f" (and {len(missing) - 1} more)" if len(missing) > 1 else "")
                + ("; codes must be leaves of the hierarchy" if missing[0] in self.children else "")
            )
