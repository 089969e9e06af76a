#!/usr/bin/env python3
"""Fails if the modules of a crate refer to each other in a circle.

    python3 .ci/module-cycles.py src service/src

Each file under a crate's source folder is a module (`a/b.rs` and
`a/b/mod.rs` are `a::b`; `lib.rs` is the crate root). Module A depends on
module B when A names B in a path (`use super::b::X`, `crate::a::b::f()`,
`super::b::Y` in code), and B is neither A itself nor one of A's ancestors
(a child naming its parent's items, e.g. `super::Engine`, is how a module
tree works, and the parent names its children by declaring them). A circle
of such dependencies fails the check, with the files that make it.
"""

import os
import re
import sys


def modules(root):
    """Module path (tuple) -> file, for every .rs file under `root`."""
    found = {}
    for folder, _, files in os.walk(root):
        for name in files:
            if not name.endswith(".rs"):
                continue
            rel = os.path.relpath(os.path.join(folder, name), root)
            parts = rel[:-3].split(os.sep)
            if parts[-1] in ("mod", "lib", "main"):
                parts = parts[:-1]
            if parts and parts[0] in ("bin", "tests", "benches"):
                continue
            found[tuple(parts)] = os.path.join(folder, name)
    return found


PATH = re.compile(r"\b((?:crate|super|self)(?:::\w+)+)")
USE_GROUP = re.compile(r"\buse\s+((?:crate|super|self)(?:::\w+)*)::\{([^;]*)\};", re.S)


def strip(text):
    """The source without comments, string and char literals (a small lexer:
    `//` inside a string is not a comment, a `"` inside a comment is not a
    string)."""
    out, i, n = [], 0, len(text)
    while i < n:
        c = text[i]
        if text.startswith("//", i):
            j = text.find("\n", i)
            i = n if j < 0 else j
        elif text.startswith("/*", i):
            depth, i = 1, i + 2
            while i < n and depth:
                if text.startswith("/*", i):
                    depth, i = depth + 1, i + 2
                elif text.startswith("*/", i):
                    depth, i = depth - 1, i + 2
                else:
                    i += 1
        elif c == "r" and re.match(r'r#*"', text[i:]) and (i == 0 or not (text[i - 1].isalnum() or text[i - 1] == "_")):
            hashes = len(re.match(r"r(#*)", text[i:]).group(1))
            end = text.find('"' + "#" * hashes, i + 2 + hashes)
            i = n if end < 0 else end + 1 + hashes
            out.append('""')
        elif c == '"':
            i += 1
            while i < n and text[i] != '"':
                i += 2 if text[i] == "\\" else 1
            i += 1
            out.append('""')
        elif c == "'" and re.match(r"'(?:\\.[^']*|[^'\\])'", text[i:]):
            i += len(re.match(r"'(?:\\.[^']*|[^'\\])'", text[i:]).group(0))
        else:
            out.append(c)
            i += 1
    return "".join(out)


def resolve(base, path, known):
    """The longest known module named by `path` (a list of segments) seen
    from module `base`, or None."""
    parts = path.split("::")
    if parts[0] == "crate":
        cur = []
    elif parts[0] in ("super", "self"):
        cur = list(base)
        while parts and parts[0] in ("super", "self"):
            if parts.pop(0) == "super":
                cur = cur[:-1]
        parts = ["_"] + parts
    else:
        return None
    best = tuple(cur) if tuple(cur) in known else None
    for seg in parts[1:]:
        cur = cur + [seg]
        if tuple(cur) in known:
            best = tuple(cur)
        else:
            break
    return best


def edges(known):
    out = {m: {} for m in known}
    for mod, path in known.items():
        text = strip(open(path, encoding="utf-8").read())
        refs = [m.group(1) for m in PATH.finditer(text)]
        for group in USE_GROUP.finditer(text):
            prefix = group.group(1)
            for item in re.split(r"[,\s]+", group.group(2)):
                item = item.strip("{}")
                if item and item != "self":
                    refs.append(prefix + "::" + item.split("::")[0])
        for ref in refs:
            target = resolve(mod, ref, known)
            if target is None or target == mod or mod[: len(target)] == target:
                continue
            out[mod].setdefault(target, path)
    return out


def cycles(graph):
    """Every elementary circle found by depth-first search (one per start)."""
    found, seen = [], set()
    for start in sorted(graph):
        stack = [(start, [start])]
        while stack:
            node, trail = stack.pop()
            for nxt in sorted(graph[node]):
                if nxt == start:
                    key = frozenset(trail)
                    if key not in seen:
                        seen.add(key)
                        found.append(trail + [start])
                elif nxt not in trail and nxt > start:
                    stack.append((nxt, trail + [nxt]))
    return found


def main(roots):
    failed = False
    for root in roots:
        known = modules(root)
        graph = edges(known)
        circles = cycles(graph)
        failed = failed or bool(circles)
        for circle in circles:
            names = ["::".join(m) or "crate" for m in circle]
            print(f"{root}: modules in a circle: {' -> '.join(names)}")
            for a, b in zip(circle, circle[1:]):
                print(f"  {known[a]} names {'::'.join(b) or 'crate'}")
        verdict = f"{len(circles)} circle(s)" if circles else "no circle"
        dependencies = sum(len(v) for v in graph.values())
        print(f"{root}: {len(known)} modules, {dependencies} dependencies, {verdict}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:] or ["src"]))
