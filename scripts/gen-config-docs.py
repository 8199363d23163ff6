#!/usr/bin/env python3
"""The parameter tables of the docs, generated from the code.

`weir --list-params` prints every parameter table (the conf_spec tables of
the core sections and of every plugin, with their descriptions) as Markdown
sections, each opened by a `<!-- params:NAME -->` line. In the docs
(docs/configuration.md, docs/outputs/*.md) a table lives between

    <!-- params:NAME -->
    ...generated...
    <!-- /params:NAME -->

This script replaces each such region with the table NAME (the heading of the
listing is left out: the docs keep their own headings and prose).

    scripts/gen-config-docs.py [--weir build/weir]          rewrite the docs (make docs)
    scripts/gen-config-docs.py --check [--weir build/weir]  change nothing (make docs-check)

Fails (exit 1) when a region is stale (--check: prints the diff), when a
marker names no table, when a marker is not closed or appears twice, or when
a table has no region anywhere in the docs: every plugin and core section
must be documented. Edit a description in the C table, then run `make docs`.
"""
import argparse
import difflib
import glob
import os
import re
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DOCS = ["docs/configuration.md"] + sorted(os.path.relpath(p, ROOT)
                                          for p in glob.glob(os.path.join(ROOT, "docs", "outputs", "*.md")))
OPEN = re.compile(r"^<!-- params:([A-Za-z0-9_.-]+) -->$")
CLOSE = re.compile(r"^<!-- /params:([A-Za-z0-9_.-]+) -->$")


def tables(weir):
    """NAME -> the Markdown body of its section (without marker and heading)."""
    p = subprocess.run([weir, "--list-params"], capture_output=True, text=True)
    if p.returncode != 0:
        sys.exit(f"gen-config-docs: {weir} --list-params failed (exit {p.returncode}):\n{p.stderr}")
    out, name, body = {}, None, []

    def done():
        if name is None:
            return
        lines = body[:]
        if lines and lines[0].startswith("### "):
            lines = lines[1:]
        text = "\n".join(lines).strip("\n")
        if name in out:
            sys.exit(f"gen-config-docs: {weir} --list-params printed {name} twice")
        out[name] = text

    for line in p.stdout.splitlines():
        m = OPEN.match(line)
        if m:
            done()
            name, body = m.group(1), []
        elif name is not None:
            body.append(line)
        elif line.strip():
            sys.exit(f"gen-config-docs: unexpected line before the first section: {line!r}")
    done()
    if not out:
        sys.exit(f"gen-config-docs: {weir} --list-params printed no table")
    return out


def regenerate(path, text, tabs, seen, errors):
    """The file's text with every region replaced."""
    lines = text.split("\n")
    res, i = [], 0
    while i < len(lines):
        line = lines[i]
        res.append(line)
        m = OPEN.match(line)
        if CLOSE.match(line):
            errors.append(f"{path}:{i + 1}: {line.strip()} without its opening marker")
        if not m:
            i += 1
            continue
        name = m.group(1)
        j = i + 1
        while j < len(lines) and not OPEN.match(lines[j]) and not CLOSE.match(lines[j]):
            j += 1
        cm = CLOSE.match(lines[j]) if j < len(lines) else None
        if not cm or cm.group(1) != name:
            errors.append(f"{path}:{i + 1}: <!-- params:{name} --> is not closed by <!-- /params:{name} -->")
            i += 1
            continue
        if name in seen:
            errors.append(f"{path}:{i + 1}: params:{name} again (first at {seen[name]})")
        else:
            seen[name] = f"{path}:{i + 1}"
        if name not in tabs:
            errors.append(f"{path}:{i + 1}: params:{name} names no table of weir --list-params")
            res.extend(lines[i + 1:j])
        else:
            res.extend(["", tabs[name], ""])
        res.append(lines[j])
        i = j + 1
    return "\n".join(res)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--weir", default=os.path.join(ROOT, "build", "weir"), help="the weir binary (default build/weir)")
    ap.add_argument("--check", action="store_true", help="change nothing; exit 1 with a diff when the docs are stale")
    args = ap.parse_args()
    tabs = tables(args.weir)
    seen, errors, stale = {}, [], []
    for rel in DOCS:
        path = os.path.join(ROOT, rel)
        with open(path, encoding="utf-8") as f:
            old = f.read()
        new = regenerate(rel, old, tabs, seen, errors)
        if new == old:
            continue
        stale.append(rel)
        if args.check:
            sys.stdout.writelines(difflib.unified_diff(old.splitlines(True), new.splitlines(True),
                                                       "a/" + rel, "b/" + rel))
        else:
            with open(path, "w", encoding="utf-8") as f:
                f.write(new)
            print(f"gen-config-docs: updated {rel}")
    for name in tabs:
        if name not in seen:
            errors.append(f"params:{name} has no region in the docs: add "
                          f"<!-- params:{name} --> <!-- /params:{name} --> where it belongs")
    for e in errors:
        print(f"gen-config-docs: {e}", file=sys.stderr)
    if args.check and stale:
        print(f"gen-config-docs: stale parameter tables in {', '.join(stale)}: run make docs", file=sys.stderr)
    return 1 if errors or (args.check and stale) else 0


if __name__ == "__main__":
    sys.exit(main())
