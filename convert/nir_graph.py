"""Structure of a NIR graph as every converter and target sees it: nested graphs inlined, and the
edges that close cycles (which carry the previous step's value)."""

from __future__ import annotations

from dataclasses import dataclass, field

import nir

from mksgn.errors import MksgnError


@dataclass
class FlatGraph:
    """A graph with nested graphs inlined (inner names joined with '.')."""

    nodes: dict[str, nir.NIRNode]
    edges: list[tuple[str, str]]
    inputs: list[str]
    outputs: list[str]
    passthrough: set[str] = field(default_factory=set)  # inner Input/Output nodes: identities

    def without_passthrough(self) -> tuple[dict[str, nir.NIRNode], list[tuple[str, str]]]:
        """Nodes and edges with the inner Input/Output identities bypassed."""
        nodes = {n: v for n, v in self.nodes.items() if n not in self.passthrough}
        edges = [e for e in self.edges if not set(e) & self.passthrough]
        for bridge in self.passthrough:
            sources = self.bypassed_sources(bridge)
            targets = self.bypassed_targets(bridge)
            edges += [(s, t) for s in sources for t in targets]
        return nodes, list(dict.fromkeys(edges))

    def bypassed_sources(self, name: str) -> list[str]:
        """Real (non-identity) nodes that feed `name` through identities."""
        return self._bypassed(name, upstream=True)

    def bypassed_targets(self, name: str) -> list[str]:
        """Real (non-identity) nodes that `name` feeds through identities."""
        return self._bypassed(name, upstream=False)

    def _bypassed(self, name: str, upstream: bool) -> list[str]:
        found = []
        for edge in self.edges:
            near, far = (edge[1], edge[0]) if upstream else edge
            if near == name:
                found += self._bypassed(far, upstream) if far in self.passthrough else [far]
        return found


def flatten_graph(graph: nir.NIRGraph, prefix: str = "") -> FlatGraph:
    """Inline nested NIRGraph nodes: edges into a subgraph go to its Input node, edges out of it
    leave from its Output node (or from the inner node an edge names as 'subgraph.node'); the
    inner Input/Output nodes become identities."""
    flat = FlatGraph({}, [], [], [])
    entry: dict[str, str] = {}
    exit_: dict[str, str] = {}
    for name, node in graph.nodes.items():
        full = prefix + name
        if isinstance(node, nir.NIRGraph):
            inner = flatten_graph(node, full + ".")
            if len(inner.inputs) != 1 or len(inner.outputs) != 1:
                raise MksgnError(
                    f"node '{full}' (NIRGraph): a nested graph needs exactly one Input and Output"
                )
            flat.nodes.update(inner.nodes)
            flat.edges += inner.edges
            flat.passthrough |= inner.passthrough | {inner.inputs[0], inner.outputs[0]}
            entry[name], exit_[name] = inner.inputs[0], inner.outputs[0]
            continue
        flat.nodes[full] = node
        entry[name] = exit_[name] = full
        if isinstance(node, nir.Input):
            flat.inputs.append(full)
        elif isinstance(node, nir.Output):
            flat.outputs.append(full)

    def resolve(end: str, ports: dict[str, str]) -> str:
        if end in ports:
            return ports[end]
        if prefix + end in flat.nodes:  # 'subgraph.node' names an inner node directly
            return prefix + end
        raise MksgnError(f"an edge names '{end}', which is no node of the graph")

    for source, target in graph.edges:
        flat.edges.append((resolve(source, exit_), resolve(target, entry)))
    return flat


def back_edges(
    nodes: dict[str, nir.NIRNode], edges: list[tuple[str, str]], roots: list[str]
) -> set[tuple[str, str]]:
    """Edges that close a cycle: depth-first search from `roots` then every other node (file
    order, successors in edge order); an edge to a node still on the search path closes one."""
    successors: dict[str, list[str]] = {name: [] for name in nodes}
    for source, target in edges:
        successors[source].append(target)
    state: dict[str, int] = {}  # 1 on the path, 2 finished
    found: set[tuple[str, str]] = set()
    for root in roots + [name for name in nodes if name not in roots]:
        if root in state:
            continue
        stack = [(root, iter(successors[root]))]
        state[root] = 1
        while stack:
            node, pending = stack[-1]
            following = next(pending, None)
            if following is None:
                state[node] = 2
                stack.pop()
            elif state.get(following) == 1:
                found.add((node, following))
            elif following not in state:
                state[following] = 1
                stack.append((following, iter(successors[following])))
    return found
