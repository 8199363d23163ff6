#!/usr/bin/env python3
"""The layer check (docs/architecture.md, "Layers"): every #include "..." in
weir's C sources must point to the same folder or to a layer below.

    lib/                 0  includes nothing else of weir
    config/              1
    buffer/              2
    aggregator/          3  (and its subfolders: filters/, parsers/, inputs/)
    forward-protocol/    4  }  plugins: siblings, neither includes the other
    outputs/             4  }

A folder is a node (outputs/kafka is its own node, in the outputs layer).
Fails (exit 1) on:
  - an include that points up a layer, or across to another top-level folder
    of the same layer;
  - any cycle in the folder graph (also between subfolders of one layer);
  - an include of a file that does not exist.
Edges listed in the baseline file (scripts/layers-baseline.txt: "from -> to"
per line, # comments) are reported as known and do not fail, so that the
layout can move in steps; a baseline edge that no longer occurs fails too,
so the list can only shrink. test/, bench/ and generated files are not
checked. Prints the folder graph.
"""
import os
import re
import sys

LAYERS = {"lib": 0, "config": 1, "buffer": 2, "aggregator": 3, "forward-protocol": 4, "outputs": 4}
INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"]+)"', re.M)


def c_files(root):
    for top in LAYERS:
        for d, _, files in os.walk(os.path.join(root, top)):
            for f in sorted(files):
                if f.endswith((".c", ".h")):
                    yield os.path.relpath(os.path.join(d, f), root)


def folder(path):
    return os.path.dirname(path)


def layer(fold):
    return LAYERS[fold.split("/")[0]]


def find_cycles(nodes, edges):
    """Strongly connected components with more than one node (Tarjan)."""
    index, low, stack, on, out = {}, {}, [], set(), []
    counter = [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in sorted(edges.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(nodes):
        if v not in index:
            visit(v)
    return out


def main():
    root = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
    baseline_path = os.path.join(root, "scripts", "layers-baseline.txt")
    baseline = set()
    if os.path.exists(baseline_path):
        for line in open(baseline_path):
            line = line.split("#", 1)[0].strip()
            if line:
                a, b = [x.strip() for x in line.split("->")]
                baseline.add((a, b))

    edges, why, nodes, problems = {}, {}, set(), []
    for path in c_files(root):
        src = folder(path)
        nodes.add(src)
        text = open(os.path.join(root, path), encoding="utf-8", errors="replace").read()
        for inc in INCLUDE.findall(text):
            if "/" not in inc:
                target = os.path.join(src, inc)
            else:
                target = inc
            if not os.path.exists(os.path.join(root, target)):
                if "/" in inc or not inc.endswith(".h"):
                    problems.append(f"{path}: includes \"{inc}\", which does not exist")
                continue
            dst = folder(target)
            if dst.split("/")[0] not in LAYERS:
                problems.append(f"{path}: includes \"{inc}\" from outside the layered folders")
                continue
            if dst == src:
                continue
            nodes.add(dst)
            edges.setdefault(src, set()).add(dst)
            why.setdefault((src, dst), []).append(f"{path} -> {inc}")

    bad_edges = []
    for (a, b) in sorted(why):
        ta, tb = a.split("/")[0], b.split("/")[0]
        if layer(b) > layer(a) or (layer(b) == layer(a) and ta != tb):
            bad_edges.append((a, b))
    cycles = find_cycles(nodes, edges)
    cycle_edges = set()
    for comp in cycles:
        cs = set(comp)
        for a in comp:
            for b in edges.get(a, ()):
                if b in cs:
                    cycle_edges.add((a, b))

    print("layer check: folder graph (from -> to: includes)")
    for (a, b) in sorted(why):
        mark = ""
        if (a, b) in bad_edges or (a, b) in cycle_edges:
            mark = "  KNOWN (baseline)" if (a, b) in baseline else "  VIOLATION"
        print(f"  {a:<28} -> {b:<28} {len(why[(a, b)]):3d}{mark}")

    for (a, b) in bad_edges:
        if (a, b) not in baseline:
            problems.append(f"{a} -> {b}: points up a layer or across to a sibling: " + "; ".join(why[(a, b)][:3]))
    for comp in cycles:
        new = [e for e in cycle_edges if e[0] in comp and e not in baseline]
        if new:
            problems.append("include cycle between " + ", ".join(comp) + ": " +
                            "; ".join(f"{a} -> {b} ({why[(a, b)][0]})" for a, b in sorted(new)))
    for (a, b) in sorted(baseline):
        if (a, b) not in bad_edges and (a, b) not in cycle_edges:
            problems.append(f"baseline edge {a} -> {b} no longer occurs: remove it from scripts/layers-baseline.txt")

    known = sorted(e for e in baseline if e in bad_edges or e in cycle_edges)
    print(f"layer check: {len(nodes)} folders, {sum(len(v) for v in why.values())} cross-folder includes, "
          f"{len(cycles)} cycle(s), {len(known)} known baseline edge(s)")
    if problems:
        for p in problems:
            print("layer check: " + p, file=sys.stderr)
        print(f"layer check: FAILED ({len(problems)} problem(s))", file=sys.stderr)
        return 1
    print("layer check: OK")
    return 0


if __name__ == "__main__":
    sys.exit(main())
