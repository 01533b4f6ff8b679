"""The shape of the import graph: modules per package, and import cycles.

``python -m benchmarks.import_graph`` prints, for the tree it runs in, how many modules
each package holds and every group of modules that import each other (a cycle: the
strongly connected components of the module graph, function-level imports included,
as import-linter's graph counts them). To see another checkout, e.g. the commit before
the family packages::

    git worktree add /tmp/before 1c4fd2d
    python -m benchmarks.import_graph --path /tmp/before alert_jobs assets sensors

Not a timing: the one figure to compare is the number of cycles (0 is the goal).
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter

import grimp


def package_of(module: str, graph: grimp.ImportGraph, roots: list[str]) -> str:
    """``alert_jobs.store.alerts`` → ``alert_jobs.store``; a module directly under a root
    (not a package) → ``<root> (top level)``."""
    parts = module.split(".")
    if len(parts) == 1:
        return module
    head = ".".join(parts[:2])
    if len(parts) > 2 or graph.find_children(module):
        return head
    return f"{parts[0]} (top level)"


def cycles(graph: grimp.ImportGraph, modules: set[str]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan, iterative)."""
    edges = {m: sorted(graph.find_modules_directly_imported_by(m) & modules - {m})
             for m in modules}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []
    counter = 0
    for start in sorted(modules):
        if start in index:
            continue
        work = [(start, 0)]
        while work:
            node, i = work.pop()
            if i == 0:
                index[node] = low[node] = counter
                counter += 1
                stack.append(node)
                on_stack.add(node)
            recurse = False
            for j in range(i, len(edges[node])):
                nxt = edges[node][j]
                if nxt not in index:
                    work.append((node, j + 1))
                    work.append((nxt, 0))
                    recurse = True
                    break
                if nxt in on_stack:
                    low[node] = min(low[node], index[nxt])
            if recurse:
                continue
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    out.append(sorted(component))
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
    return sorted(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("roots", nargs="*", default=["alert_jobs"],
                        help="top-level packages to graph (default: alert_jobs)")
    parser.add_argument("--path", help="import the packages from this checkout")
    args = parser.parse_args(argv)
    if args.path:
        sys.path.insert(0, args.path)
    graph = grimp.build_graph(*args.roots, include_external_packages=False)
    modules = {m for m in graph.modules if m.split(".")[0] in args.roots}
    counts = Counter(package_of(m, graph, args.roots) for m in modules)
    width = max(len(k) for k in counts)
    for name in sorted(counts):
        print(f"{name:<{width}}  {counts[name]:4d}")
    print(f"{'modules in all':<{width}}  {len(modules):4d}")
    found = cycles(graph, modules)
    print(f"\nimport cycles (modules that import each other): {len(found)}")
    for component in found:
        print("  " + " <-> ".join(component))
    return 0


if __name__ == "__main__":
    sys.exit(main())
