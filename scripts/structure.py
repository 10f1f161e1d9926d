#!/usr/bin/env python3
"""Measure the code structure of both crates (stdlib only, Python 3.11).

Reports:
  (a) server_cycle   the largest import cycle (strongly connected component, by module
                     count) among the server's top-level modules (`server/src/*.rs` and
                     `server/src/*/`, one module each);
  (b) operator_cycles import cycles among the operator's files (`src/**/*.rs`);
  (c) long_functions functions outside tests longer than 150 lines, both crates;
  (d) server_statics process-global mutable statics in the server.

Prints a small table and one JSON line (prefixed `STRUCTURE_JSON `). With `--check` it exits
non-zero unless the parts selected by `--only operator|server|all` meet the targets:
(a) <= 6 modules, (b) no cycle, (c) none, (d) <= 2.

Edges come from paths that start with `crate::`, `super::` or `self::` (in `use` trees,
including `{a, b::c}` groups, and in expressions). Comments, strings and char literals are
blanked first; items under `#[cfg(test)]` / `#[test]` and files in `tests/` dirs or declared
`#[cfg(test)] mod x;` are ignored. Known limits: inline `mod x { .. }` blocks and `#[path]`
attributes are not followed; macros are read as ordinary tokens.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

MAX_FN_LINES = 150
TARGET_SERVER_CYCLE = 6
TARGET_SERVER_STATICS = 2

IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


# ---------------------------------------------------------------------------------------
# Lexing: blank comments, strings and char literals, keeping offsets and newlines.


def _blank(chars: list[str], start: int, end: int) -> None:
    for i in range(start, min(end, len(chars))):
        if chars[i] != "\n":
            chars[i] = " "


def _is_ident_char(c: str) -> bool:
    return c.isalnum() or c == "_"


def strip_code(text: str) -> str:
    """Returns `text` with comments, string and char literal contents replaced by spaces."""
    chars = list(text)
    n = len(text)
    i = 0
    while i < n:
        c = text[i]
        nxt = text[i + 1] if i + 1 < n else ""
        if c == "/" and nxt == "/":
            j = text.find("\n", i)
            j = n if j < 0 else j
            _blank(chars, i, j)
            i = j
            continue
        if c == "/" and nxt == "*":
            depth, j = 1, i + 2
            while j < n and depth:
                if text.startswith("/*", j):
                    depth, j = depth + 1, j + 2
                elif text.startswith("*/", j):
                    depth, j = depth - 1, j + 2
                else:
                    j += 1
            _blank(chars, i, j)
            i = j
            continue
        prev = text[i - 1] if i > 0 else ""
        # Raw strings: r"..", r#".."#, br#".."#, cr"..".
        if c == "r" and not (_is_ident_char(prev) and prev not in "bc") and (
            nxt == '"' or nxt == "#"
        ):
            if prev in "bc" and i >= 2 and _is_ident_char(text[i - 2]):
                i += 1
                continue
            j = i + 1
            hashes = 0
            while j < n and text[j] == "#":
                hashes, j = hashes + 1, j + 1
            if j < n and text[j] == '"':
                close = '"' + "#" * hashes
                k = text.find(close, j + 1)
                k = n if k < 0 else k + len(close)
                _blank(chars, j + 1, k - len(close))
                i = k
                continue
            i += 1
            continue
        if c == '"':
            j = i + 1
            while j < n and text[j] != '"':
                j += 2 if text[j] == "\\" else 1
            _blank(chars, i + 1, j)
            i = j + 1
            continue
        if c == "'":
            # Char literal ('a', '\n', '\u{..}', b'x') or a lifetime/label ('a, 'static).
            if nxt == "\\":
                j = i + 3  # past the backslash and the escaped character
                while j < n and text[j] != "'" and text[j] != "\n":
                    j += 1
                _blank(chars, i + 1, j)
                i = j + 1
                continue
            if i + 2 < n and text[i + 2] == "'" and nxt != "\n":
                _blank(chars, i + 1, i + 2)
                i += 3
                continue
            i += 1
            continue
        i += 1
    return "".join(chars)


def match_brace(code: str, open_at: int) -> int:
    """Index of the brace closing the one at `open_at` (len(code) when unbalanced)."""
    depth = 0
    for j in range(open_at, len(code)):
        ch = code[j]
        if ch == "{":
            depth += 1
        elif ch == "}":
            depth -= 1
            if depth == 0:
                return j
    return len(code)


def item_end(code: str, start: int) -> int:
    """End (exclusive) of the item starting at `start`: its `;` or its closing brace."""
    paren = 0
    for j in range(start, len(code)):
        ch = code[j]
        if ch in "([":
            paren += 1
        elif ch in ")]":
            paren -= 1
        elif paren <= 0 and ch == ";":
            return j + 1
        elif paren <= 0 and ch == "{":
            return match_brace(code, j) + 1
    return len(code)


TEST_ATTR = re.compile(r"#\[\s*(?:cfg\s*\((?P<cfg>[^\]]*)\)|(?:tokio::)?test\b[^\]]*)\s*\]")
ATTR = re.compile(r"\s*#\[[^\]]*\]")


def _is_test_cfg(cfg: str | None) -> bool:
    if cfg is None:
        return True  # #[test] / #[tokio::test]
    cfg = cfg.replace(" ", "")
    if not re.search(r"\btest\b", cfg):
        return False
    return cfg == "test" or (cfg.startswith("all(") and "not(" not in cfg)


def remove_tests(code: str) -> tuple[str, list[str]]:
    """Blanks items under test attributes; returns the code and `mod x;` names declared so."""
    chars = list(code)
    test_mod_files: list[str] = []
    for m in TEST_ATTR.finditer(code):
        if not _is_test_cfg(m.group("cfg")):
            continue
        j = m.end()
        while True:
            a = ATTR.match(code, j)
            if not a:
                break
            j = a.end()
        end = item_end(code, j)
        decl = re.match(r"\s*(?:pub(?:\([^)]*\))?\s+)?mod\s+(\w+)\s*;", code[j:end])
        if decl:
            test_mod_files.append(decl.group(1))
        _blank(chars, m.start(), end)
    return "".join(chars), test_mod_files


# ---------------------------------------------------------------------------------------
# Source files and module paths.


@dataclass
class SourceFile:
    path: Path
    rel: str
    module: list[str]  # module path from the crate root
    code: str  # stripped, tests removed
    raw_lines: int = 0


def module_path(src_root: Path, path: Path) -> list[str]:
    parts = list(path.relative_to(src_root).parts)
    stem = parts[-1][:-3]
    parts = parts[:-1]
    if stem in ("mod", "lib", "main") and (stem == "mod" or not parts):
        return parts
    return parts + [stem]


def load_crate(repo: Path, src_root: Path) -> list[SourceFile]:
    files: dict[Path, SourceFile] = {}
    excluded: set[Path] = set()
    for path in sorted(src_root.rglob("*.rs")):
        rel_parts = path.relative_to(src_root).parts
        if "tests" in rel_parts[:-1]:
            continue
        text = path.read_text(encoding="utf-8", errors="replace")
        code, test_mods = remove_tests(strip_code(text))
        mod = module_path(src_root, path)
        base = path.parent if path.name in ("mod.rs", "lib.rs", "main.rs") else path.with_suffix("")
        for name in test_mods:
            excluded.add(base / f"{name}.rs")
            excluded.add(base / name / "mod.rs")
        files[path] = SourceFile(path, str(path.relative_to(repo)), mod, code, text.count("\n"))
    excluded_dirs = {e.parent for e in excluded if e.name == "mod.rs"}
    for path in list(files):
        if path in excluded or any(path.is_relative_to(d) for d in excluded_dirs):
            files.pop(path, None)
    return list(files.values())


# ---------------------------------------------------------------------------------------
# Paths: `crate::a::{b, c::d}`, `super::x`, `self::y` expanded to absolute module paths.

PATH_START = re.compile(r"(?<![A-Za-z0-9_:])(crate|super|self)\s*::")


def _skip_ws(code: str, i: int) -> int:
    while i < len(code) and code[i].isspace():
        i += 1
    return i


def parse_tree(code: str, i: int, prefix: list[str], out: list[list[str]], depth: int = 0) -> int:
    """Parses a use tree at `i` (after a `::`); appends full paths to `out`; returns end."""
    if depth > 16:
        return i
    i = _skip_ws(code, i)
    if i < len(code) and code[i] == "{":
        i += 1
        while i < len(code):
            i = _skip_ws(code, i)
            if i < len(code) and code[i] == "}":
                return i + 1
            i = parse_tree(code, i, prefix, out, depth + 1)
            i = _skip_ws(code, i)
            if i < len(code) and code[i] == ",":
                i += 1
                continue
            if i < len(code) and code[i] == "}":
                return i + 1
            return i
        return i
    segs = list(prefix)
    while True:
        i = _skip_ws(code, i)
        m = IDENT.match(code, i)
        if not m:
            if i < len(code) and code[i] == "*":
                i += 1
            break
        segs.append(m.group(0))
        i = _skip_ws(code, m.end())
        if code.startswith("::", i):
            i = _skip_ws(code, i + 2)
            if i < len(code) and code[i] == "{":
                out.append(segs)
                return parse_tree(code, i, segs, out, depth + 1)
            continue
        break
    out.append(segs)
    return i


def paths_in(f: SourceFile) -> list[list[str]]:
    """Absolute module paths (from the crate root) mentioned by a file."""
    found: list[list[str]] = []
    for m in PATH_START.finditer(f.code):
        # Resolve the chain of super:: / self:: at the start.
        base: list[str] | None = None
        i = m.start()
        while True:
            mm = re.match(r"(crate|super|self)\s*::\s*", f.code[i:])
            if not mm:
                break
            kw = mm.group(1)
            if kw == "crate" and base is None:
                base = []
            elif kw == "super":
                base = list(f.module if base is None else base)[:-1]
            elif kw == "self" and base is None:
                base = list(f.module)
            i += mm.end()
        base = base or []
        raw: list[list[str]] = []
        parse_tree(f.code, i, [], raw)
        for p in raw:
            p = [s for s in p if s != "self"]
            found.append(base + p)
    return found


# ---------------------------------------------------------------------------------------
# Graphs.


def sccs(nodes: list[str], edges: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's strongly connected components (iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    out: list[list[str]] = []
    counter = 0
    for root in nodes:
        if root in index:
            continue
        work = [(root, iter(sorted(edges.get(root, ()))))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            v, it = work[-1]
            advanced = False
            for w in it:
                if w not in index:
                    index[w] = low[w] = counter
                    counter += 1
                    stack.append(w)
                    on_stack.add(w)
                    work.append((w, iter(sorted(edges.get(w, ())))))
                    advanced = True
                    break
                if w in on_stack:
                    low[v] = min(low[v], index[w])
            if advanced:
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[v])
            if low[v] == index[v]:
                comp = []
                while True:
                    w = stack.pop()
                    on_stack.discard(w)
                    comp.append(w)
                    if w == v:
                        break
                out.append(sorted(comp))
    return out


def server_cycle(repo: Path) -> dict:
    root = repo / "server" / "src"
    files = load_crate(repo, root)
    top = {p.stem for p in root.glob("*.rs") if p.stem not in ("lib", "main")}
    top |= {p.name for p in root.iterdir() if p.is_dir()}
    edges: dict[str, set[str]] = {t: set() for t in top}
    for f in files:
        if not f.module or f.module[0] not in top:
            continue
        a = f.module[0]
        for p in paths_in(f):
            if p and p[0] in top and p[0] != a:
                edges[a].add(p[0])
    comps = [c for c in sccs(sorted(top), edges) if len(c) > 1]
    comps.sort(key=len, reverse=True)
    largest = comps[0] if comps else []
    return {"largest": len(largest), "modules": largest, "cycles": len(comps)}


def operator_cycles(repo: Path) -> dict:
    root = repo / "src"
    files = load_crate(repo, root)
    by_mod = {tuple(f.module): f.rel for f in files}
    edges: dict[str, set[str]] = {f.rel: set() for f in files}
    for f in files:
        for p in paths_in(f):
            for k in range(len(p), -1, -1):
                target = by_mod.get(tuple(p[:k]))
                if target is not None:
                    if target != f.rel and k > 0:
                        edges[f.rel].add(target)
                    break
    comps = [c for c in sccs(sorted(edges), edges) if len(c) > 1]
    comps.sort(key=len, reverse=True)
    return {"count": len(comps), "cycles": comps}


FN = re.compile(r"(?<![A-Za-z0-9_])fn\s+([A-Za-z_][A-Za-z0-9_]*)")


def long_functions(repo: Path, crate_root: Path) -> list[dict]:
    out = []
    for f in load_crate(repo, crate_root):
        code = f.code
        for m in FN.finditer(code):
            j = m.end()
            body = None
            paren = 0
            while j < len(code):
                ch = code[j]
                if ch in "([":
                    paren += 1
                elif ch in ")]":
                    paren -= 1
                elif paren <= 0 and ch == ";":
                    break
                elif paren <= 0 and ch == "{":
                    body = j
                    break
                j += 1
            if body is None:
                continue
            close = match_brace(code, body)
            start_line = code.count("\n", 0, m.start()) + 1
            end_line = code.count("\n", 0, close) + 1
            length = end_line - start_line + 1
            if length > MAX_FN_LINES:
                out.append({"file": f.rel, "line": start_line, "fn": m.group(1), "lines": length})
    out.sort(key=lambda r: -r["lines"])
    return out


STATIC = re.compile(
    r"(?<!['A-Za-z0-9_])static\s+(?P<mut>mut\s+)?(?P<name>[A-Za-z_][A-Za-z0-9_]*)\s*:(?P<ty>[^=;]*)"
)
# What makes a static mutable state: a lock, an atomic or a cell. A write-once wrapper
# (OnceLock, OnceCell, Lazy, LazyLock) counts only when what it holds is itself mutable:
# `OnceLock<HashMap<..>>` built once from constant data and never changed after is a
# lazily computed constant, not state (the command index, the hash seed), while
# `OnceLock<Mutex<..>>` is state behind a lazy initialiser.
MUTABLE_TYPES = re.compile(r"\b(Mutex|RwLock|Cell|RefCell|UnsafeCell|Atomic[A-Za-z0-9]*)\b")


def server_statics(repo: Path) -> list[dict]:
    out = []
    for f in load_crate(repo, repo / "server" / "src"):
        for m in STATIC.finditer(f.code):
            ty = " ".join(m.group("ty").split())
            if m.group("mut") or MUTABLE_TYPES.search(ty):
                line = f.code.count("\n", 0, m.start()) + 1
                out.append({"file": f.rel, "line": line, "name": m.group("name"), "type": ty})
    return out


# ---------------------------------------------------------------------------------------


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--check", action="store_true", help="exit non-zero unless targets are met")
    ap.add_argument("--only", choices=["operator", "server", "all"], default="all")
    ap.add_argument("--root", type=Path, default=Path(__file__).resolve().parent.parent)
    args = ap.parse_args()
    repo = args.root.resolve()
    want_server = args.only in ("server", "all")
    want_operator = args.only in ("operator", "all")

    result: dict = {}
    failures: list[str] = []
    rows: list[tuple[str, str, str, str]] = []
    if want_server:
        cyc = server_cycle(repo)
        statics = server_statics(repo)
        fns = long_functions(repo, repo / "server" / "src")
        result["server"] = {
            "largest_cycle": cyc["largest"],
            "cycle_modules": cyc["modules"],
            "long_functions": fns,
            "mutable_statics": statics,
        }
        rows.append(("server", "(a) largest module cycle", str(cyc["largest"]), f"<= {TARGET_SERVER_CYCLE}"))
        rows.append(("server", "(c) functions > 150 lines", str(len(fns)), "0"))
        rows.append(("server", "(d) mutable statics", str(len(statics)), f"<= {TARGET_SERVER_STATICS}"))
        if cyc["largest"] > TARGET_SERVER_CYCLE:
            failures.append(f"server: largest module cycle {cyc['largest']} > {TARGET_SERVER_CYCLE}")
        if fns:
            failures.append(f"server: {len(fns)} functions longer than {MAX_FN_LINES} lines")
        if len(statics) > TARGET_SERVER_STATICS:
            failures.append(f"server: {len(statics)} mutable statics > {TARGET_SERVER_STATICS}")
    if want_operator:
        cyc = operator_cycles(repo)
        fns = long_functions(repo, repo / "src")
        result["operator"] = {"file_cycles": cyc["cycles"], "long_functions": fns}
        rows.append(("operator", "(b) file import cycles", str(cyc["count"]), "0"))
        rows.append(("operator", "(c) functions > 150 lines", str(len(fns)), "0"))
        if cyc["count"]:
            failures.append(f"operator: {cyc['count']} file import cycles")
        if fns:
            failures.append(f"operator: {len(fns)} functions longer than {MAX_FN_LINES} lines")

    w = [max(len(r[k]) for r in rows + [("crate", "measure", "value", "target")]) for k in range(4)]
    for r in [("crate", "measure", "value", "target")] + rows:
        print("  ".join(r[k].ljust(w[k]) for k in range(4)).rstrip())
    if want_server:
        s = result["server"]
        if s["cycle_modules"]:
            print(f"server cycle: {' '.join(s['cycle_modules'])}")
        for st in s["mutable_statics"]:
            print(f"static {st['file']}:{st['line']} {st['name']}: {st['type']}")
        for fn in s["long_functions"]:
            print(f"long fn {fn['file']}:{fn['line']} {fn['fn']} ({fn['lines']} lines)")
    if want_operator:
        o = result["operator"]
        for c in o["file_cycles"]:
            print(f"operator cycle: {' -> '.join(c)}")
        for fn in o["long_functions"]:
            print(f"long fn {fn['file']}:{fn['line']} {fn['fn']} ({fn['lines']} lines)")
    result["ok"] = not failures
    print("STRUCTURE_JSON " + json.dumps(result, sort_keys=True))
    if args.check and failures:
        for f in failures:
            print(f"structure check failed: {f}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
