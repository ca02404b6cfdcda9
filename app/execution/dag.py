"""TaskDAG: validation (duplicates, unknown deps, cycles), layers, ready set and the MPC horizon."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from app.core.errors import DagError
from app.domain.models import Subtask


class TaskDAG:
    def __init__(self, subtasks: Sequence[Subtask]) -> None:
        if not subtasks:
            raise DagError("a job needs at least one subtask")
        self.nodes: dict[str, Subtask] = {}
        for s in subtasks:
            if s.id in self.nodes:
                raise DagError(f"duplicate subtask id {s.id!r}")
            self.nodes[s.id] = s
        for s in subtasks:
            for dep in s.deps:
                if dep not in self.nodes:
                    raise DagError(f"subtask {s.id!r} depends on unknown subtask {dep!r}")
                if dep == s.id:
                    raise DagError(f"subtask {s.id!r} depends on itself")
        self.children: dict[str, list[str]] = {sid: [] for sid in self.nodes}
        for s in subtasks:
            for dep in s.deps:
                self.children[dep].append(s.id)
        self.order = self._topological_order()

    def _topological_order(self) -> list[str]:
        indegree = {sid: len(set(s.deps)) for sid, s in self.nodes.items()}
        queue = [sid for sid in self.nodes if indegree[sid] == 0]
        order: list[str] = []
        while queue:
            sid = queue.pop(0)
            order.append(sid)
            for child in self.children[sid]:
                indegree[child] -= 1
                if indegree[child] == 0:
                    queue.append(child)
        if len(order) != len(self.nodes):
            cyclic = sorted(set(self.nodes) - set(order))
            raise DagError(f"dependency cycle among subtasks: {', '.join(cyclic)}")
        return order

    @property
    def edges(self) -> list[tuple[str, str]]:
        return [(dep, s.id) for s in self.nodes.values() for dep in s.deps]

    def layers(self) -> list[list[str]]:
        """Longest-path layering: a node sits one layer below its deepest parent."""
        depth: dict[str, int] = {}
        for sid in self.order:
            depth[sid] = 1 + max((depth[d] for d in self.nodes[sid].deps), default=-1)
        out: list[list[str]] = [[] for _ in range(1 + max(depth.values()))]
        for sid in self.order:
            out[depth[sid]].append(sid)
        return out

    def ready(self, done: Iterable[str]) -> list[str]:
        finished = set(done)
        return [sid for sid in self.order if sid not in finished and all(d in finished for d in self.nodes[sid].deps)]

    def horizon(self, done: Iterable[str], depth: int) -> dict[str, int]:
        """Unfinished nodes within `depth` steps of now, with their step (0 = ready now).

        Finished nodes never enter the horizon (the seed kept them, so they steered every later step).
        """
        finished = set(done)
        step: dict[str, int] = {}
        for sid in self.order:
            if sid in finished:
                continue
            parents = [d for d in self.nodes[sid].deps if d not in finished]
            step[sid] = 1 + max((step[p] for p in parents), default=-1)
        return {sid: t for sid, t in step.items() if t <= depth}

    def descendants(self, sid: str) -> set[str]:
        out: set[str] = set()
        stack = list(self.children[sid])
        while stack:
            node = stack.pop()
            if node not in out:
                out.add(node)
                stack.extend(self.children[node])
        return out

    def parents(self, sid: str) -> list[Subtask]:
        return [self.nodes[d] for d in self.nodes[sid].deps]
