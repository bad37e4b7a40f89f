"""The compiled core's layout (uvloop's shape): the extension is a short root `.pyx`/`.pxd`
that includes its pieces, each a same-named `.pyx`/`.pxd` pair in one of its folders (a piece
may be declarations only: a `.pxd`). `p11fast._abi` is one such extension whose pieces live in
three folders: the codec's (`p11fast/codec/`), the transport's and the ABI's. Each piece's
`.pxd` begins with a comment block naming the piece and saying what it owns and its contract,
with a line `# uses: a, b, other/c` listing the pieces it may use: a piece of its own folder by
its name, one of another folder by folder and name (`transport/request`).

These tests parse the pieces and check what Cython cannot: every name a piece takes from
another is declared in that piece's `.pxd` (C-level names; Python-level ones are the module's
API) and the owner is in the user's `# uses:`; no `# uses:` entry is idle; the uses graph has
no cycle; the root includes every piece, in dependency order, and defines nothing itself; no
piece leans on a cimport another piece made; no file exceeds MAX_LINES; and no name is defined
by two pieces (they share one module: Cython would take a second Python-level definition as a
silent rebinding).

A piece's .pyx may include a file generated at build time (the ABI's mechanism tables and
entry points, `p11fast/_*.pxi`): it is read as part of the piece, its names are the piece's
exports (its generator documents them, the piece's .pxd header names it), and, being
generated, it is not held to MAX_LINES.

To hold another extension to the same rules, add its Tree to TREES."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
MAX_LINES = 600


@dataclass(frozen=True)
class Tree:
    root: str  # the root files without extension, relative to ROOT: "p11fast/_abi"
    # the folders of its pieces, beside the root: ("p11fast/codec", "p11fast/transport", ...)
    folders: tuple[str, ...]


TREES = [Tree("p11fast/_abi", ("p11fast/codec", "p11fast/transport", "p11fast/abi"))]
# Where `from p11fast._decl.X cimport *` takes its names from.
DECL = "p11fast/_decl"

IDENT = re.compile(r"(?<![\w.])[A-Za-z_]\w*")
FROM_MODULE = re.compile(r"^\s*from\s+[\w.]+\s+(?=c?import\b)")
# What opens a scope of its own: a function or a class (whose methods' names count as its).
SCOPE = re.compile(r"(?:async\s+)?def\b|(?:cdef\s+)?class\b|cp?def\b[^=]*\(")


# ---------------------------------------------------------------- reading Cython


def clean(text: str) -> list[str]:
    """The source's lines with comments removed and every string literal reduced to `""`
    (newlines inside triple-quoted strings kept, so line numbers still match)."""
    out: list[str] = []
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if ch == "#":
            while i < n and text[i] != "\n":
                i += 1
        elif ch in "'\"":
            quote = text[i : i + 3] if text[i : i + 3] in ('"""', "'''") else ch
            j = i + len(quote)
            while j < n and not text.startswith(quote, j):
                j += 2 if text[j] == "\\" else 1
            out.append('""' + "\n" * text.count("\n", i, j))
            i = j + len(quote)
        else:
            out.append(ch)
            i += 1
    return "".join(out).split("\n")


def indent(line: str) -> int:
    return len(line) - len(line.lstrip())


def block(lines: list[str], start: int) -> list[str]:
    """The non-empty lines of the indented block under lines[start], at its first level."""
    body: list[str] = []
    level = None
    for line in lines[start + 1 :]:
        if not line.strip() or line.strip() == '""':
            continue
        if indent(line) <= indent(lines[start]) or (level and indent(line) < level):
            break
        level = indent(line) if level is None else level
        if indent(line) == level:
            body.append(line.strip())
    return body


def declared_name(decl: str) -> str | None:
    """The name a C declaration line declares: a function, variable, type or enum member."""
    decl = re.sub(r'""', "", decl).rstrip(":").strip()
    pointer = re.search(r"\(\s*\*\s*(\w+)\s*\)\s*\(", decl)
    if pointer:
        return pointer.group(1)
    if "(" in decl:
        names = IDENT.findall(decl.split("(", 1)[0])
        return names[-1] if names else None
    names = IDENT.findall(re.sub(r"\[.*?\]|=.*", "", decl))
    return names[-1] if names else None


def enum_members(lines: list[str], start: int) -> set[str]:
    return {m for m in (declared_name(line) for line in block(lines, start)) if m}


def extern_names(lines: list[str], start: int) -> set[str]:
    names: set[str] = set()
    level = None
    for k in range(start + 1, len(lines)):
        line = lines[k]
        if not line.strip() or line.strip() == '""':
            continue
        if indent(line) == 0:
            break
        level = indent(line) if level is None else level
        if indent(line) != level:
            continue
        text = line.strip()
        head = re.match(r"(?:ctypedef\s+)?(struct|union|enum)\b\s*(\w*)\s*:?\s*(\w*)", text)
        if head:
            kind, name, member = head.groups()
            if name:
                names.add(name)
            if member:
                names.add(member)
            if kind == "enum" and text.endswith(":"):
                names |= enum_members(lines, k)
            continue
        name = declared_name(text)
        if name:
            names.add(name)
    return names


@dataclass
class Source:
    """What one file defines, imports and uses."""

    path: Path
    lines: int = 0
    c_defs: set[str] = field(default_factory=set)
    py_defs: set[str] = field(default_factory=set)
    imports: set[str] = field(default_factory=set)
    star_imports: set[str] = field(default_factory=set)
    used: dict[str, int] = field(default_factory=dict)  # name -> first line
    includes: list[str] = field(default_factory=list)


def parse(path: Path) -> Source:
    text = path.read_text()
    src = Source(path, lines=text.count("\n"))
    src.includes = re.findall(r'^include\s+"([^"]+)"', text, re.M)
    lines = clean(text)
    statements = iter(range(len(lines)))
    for k in statements:
        line = lines[k]
        if not line.strip() or indent(line) > 0:
            continue
        stmt = line.strip()
        while stmt.count("(") > stmt.count(")") and k + 1 < len(lines):
            k = next(statements)
            stmt += " " + lines[k].strip()
        parse_statement(src, lines, k, stmt)
    local = scopes(lines)
    for number, line in enumerate(lines, 1):
        # the module of a `from M import x` is no name of this module's
        for name in IDENT.findall(FROM_MODULE.sub("", line)):
            if name not in local[number - 1]:
                src.used.setdefault(name, number)
    return src


def scopes(lines: list[str]) -> list[set[str]]:
    """For each line, the names the top-level function or class around it binds for itself: its
    parameters, and what its body declares, assigns, imports or loops over. There they are its
    own, whatever another piece of the same module defines (a local `cdef int start` is no use
    of another piece's function `start`)."""
    local: list[set[str]] = [set() for _ in lines]
    k = 0
    while k < len(lines):
        header, end = lines[k].strip(), k
        if not header or indent(lines[k]) > 0 or not SCOPE.match(header):
            k += 1
            continue
        while header.count("(") > header.count(")") and end + 1 < len(lines):
            end += 1
            header += " " + lines[end].strip()
        names = set() if re.match(r"(?:cdef\s+)?class\b", header) else parameters(header)
        stop = end + 1
        while stop < len(lines) and (not lines[stop].strip() or indent(lines[stop]) > 0):
            names |= bound_in_body(lines[stop])
            stop += 1
        for i in range(k, stop):
            local[i] = names
        k = stop
    return local


def parameters(header: str) -> set[str]:
    if "(" not in header:
        return set()
    inside, depth = "", 0
    for ch in header[header.index("(") + 1 :]:
        depth += {"(": 1, ")": -1}.get(ch, 0)
        if depth < 0:
            break
        inside += ch
    return declared_names(inside)


def declared_names(decl: str) -> set[str]:
    """The names of a comma-separated declaration list: `int a, *b = 0` declares a and b."""
    names = set()
    for part in re.sub(r"\[.*?\]|\(.*?\)", "", decl).split(","):
        found = IDENT.findall(part.split("=")[0])
        if found:
            names.add(found[-1])
    return names


def bound_in_body(line: str) -> set[str]:
    text = line.strip()
    if m := re.match(r"cdef\s+(?!extern\b)(.*?):?$", text):
        return declared_names(m.group(1))
    if m := re.match(r"(?:from\s+[\w.]+\s+)?c?import\s+\(?(.*?)\)?$", text):
        return {part.split(" as ")[-1].strip().split(".")[0] for part in m.group(1).split(",")}
    names = set()
    if m := re.match(r"([\w\s,]+?)\s*(?::[^=]*)?=(?!=)", text):
        names |= set(IDENT.findall(m.group(1)))
    if m := re.search(r"\bfor\s+([\w\s,()]+?)\s+in\b", text):
        names |= set(IDENT.findall(m.group(1)))
    names |= set(re.findall(r"\bas\s+(\w+)", text))
    return names


def parse_statement(src: Source, lines: list[str], k: int, stmt: str) -> None:
    if m := re.match(r"from\s+([\w.]+)\s+c?import\s+(.*)", stmt):
        module, names = m.groups()
        if names.strip() == "*":
            src.star_imports.add(module)
        for part in names.strip("() ").split(","):
            if part.strip() and part.strip() != "*":
                src.imports.add(part.split(" as ")[-1].strip())
    elif m := re.match(r"c?import\s+([\w.]+)(?:\s+as\s+(\w+))?", stmt):
        src.imports.add(m.group(2) or m.group(1).split(".")[0])
    elif re.match(r"cdef\s+extern\b", stmt):
        src.c_defs |= extern_names(lines, k)
    elif m := re.match(r"cp?def\s+(?:public\s+|api\s+)*(struct|union|class|enum)\b\s*(\w*)", stmt):
        kind, name = m.groups()
        if name:
            src.c_defs.add(name)
        if kind == "enum":
            src.c_defs |= enum_members(lines, k)
    elif m := re.match(r"(?:cdef|cpdef|ctypedef)\b(.*)", stmt):
        name = declared_name(m.group(1))
        if name:
            src.c_defs.add(name)
    elif m := re.match(r"(?:async\s+)?(?:def|class)\s+(\w+)", stmt):
        src.py_defs.add(m.group(1))
    elif m := re.match(r"(\w+)\s*(?::[^=]*)?=(?!=)", stmt):
        src.py_defs.add(m.group(1))


# ---------------------------------------------------------------- pieces


@dataclass
class Piece:
    name: str  # folder and name, as the root includes it: "transport/request"
    pyx: Source | None
    pxd: Source | None
    uses: list[str] | None  # as folder and name; None: no `# uses:` line
    header: str  # the .pxd's first line
    generated: set[str] = field(default_factory=set)  # names of the .pyx's generated includes

    @property
    def sources(self) -> list[Source]:
        return [s for s in (self.pyx, self.pxd) if s]

    @property
    def defined(self) -> set[str]:
        return {n for s in self.sources for n in s.c_defs | s.py_defs}

    @property
    def c_defined(self) -> set[str]:
        return {n for s in self.sources for n in s.c_defs}

    @property
    def exported(self) -> set[str]:
        return (self.pxd.c_defs if self.pxd else set()) | self.generated


def decl_names(root: Path, module: str) -> set[str]:
    """Names `from <module> cimport *` binds, for our own declaration modules."""
    path = root / (module.replace(".", "/") + ".pxd")
    return parse(path).c_defs if module.startswith("p11fast._decl.") and path.exists() else set()


def bound(sources: list[Source], root: Path) -> set[str]:
    names = set()
    for src in sources:
        names |= src.imports
        for module in src.star_imports:
            names |= decl_names(root, module)
    return names


def own_names(piece: Piece, src: Source, root: Path) -> set[str]:
    """The names src may use without another piece: a .pxd sees only its own definitions and
    cimports (Cython reads it alone), a .pyx its piece's."""
    if src is piece.pxd:
        return src.c_defs | src.py_defs | bound([src], root)
    return piece.defined | bound(piece.sources, root)


def short(name: str) -> str:
    """A piece's name without its folder: what its .pxd header names."""
    return name.split("/")[-1]


def qualified(entry: str, folder: str) -> str:
    """A `# uses:` entry of a piece in `folder` as folder and name."""
    return entry if "/" in entry else f"{folder}/{entry}"


def load(tree: Tree, root: Path = ROOT) -> dict[str, Piece]:
    pieces: dict[str, Piece] = {}
    for folder in tree.folders:
        pieces |= load_folder(root / folder)
    return pieces


def load_folder(folder: Path) -> dict[str, Piece]:
    pieces: dict[str, Piece] = {}
    for name in sorted({p.stem for ext in ("pyx", "pxd") for p in folder.glob(f"*.{ext}")}):
        pyx, pxd = folder / f"{name}.pyx", folder / f"{name}.pxd"
        header = pxd.read_text().split("\n", 1)[0] if pxd.exists() else ""
        uses = None
        if pxd.exists():
            lead = []
            for line in pxd.read_text().split("\n"):
                if not line.startswith("#"):
                    break
                lead.append(line)
            found = [line for line in lead if line.startswith("# uses:")]
            if len(found) == 1:
                entries = found[0][len("# uses:") :].split(",")
                uses = [qualified(u.strip(), folder.name) for u in entries if u.strip()]
        source = parse(pyx) if pyx.exists() else None
        generated = with_includes(source) if source else set()
        key = f"{folder.name}/{name}"
        pieces[key] = Piece(key, source, parse(pxd) if pxd.exists() else None, uses, header,
                            generated)
    return pieces


def with_includes(src: Source) -> set[str]:
    """Reads the files src includes (generated at build time) into src; their names."""
    names: set[str] = set()
    for include in src.includes:
        included = parse((src.path.parent / include).resolve())
        src.c_defs |= included.c_defs
        src.py_defs |= included.py_defs
        src.imports |= included.imports
        src.star_imports |= included.star_imports
        for name, line in included.used.items():
            src.used.setdefault(name, line)
        names |= included.c_defs | included.py_defs
    return names


def owners(pieces: dict[str, Piece]) -> dict[str, str]:
    found: dict[str, str] = {}
    for piece in pieces.values():
        for name in piece.defined:
            found.setdefault(name, piece.name)
    return found


def cycle(graph: dict[str, list[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in graph.get(node, []):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt) :] + [nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return None


def check_tree(tree: Tree, root: Path = ROOT) -> list[str]:
    """Every way the tree breaks the layout's rules, one line each; [] when it keeps them."""
    problems: list[str] = []
    pieces = load(tree, root)
    owner = owners(pieces)
    importers: dict[str, set[str]] = {}
    for piece in pieces.values():
        for name in bound(piece.sources, root):
            importers.setdefault(name, set()).add(piece.name)
    for piece in pieces.values():
        where = os.path.relpath(piece.sources[0].path.with_suffix(""), root)
        if piece.pxd is None:
            problems.append(f"{where}.pyx has no .pxd: its declarations and header go there")
            continue
        if not piece.header.startswith(f"# {short(piece.name)}: "):
            problems.append(
                f"{where}.pxd does not begin with '# {short(piece.name)}: <what it owns>'"
            )
        if piece.uses is None:
            problems.append(f"{where}.pxd has no single '# uses:' line in its leading comments")
            continue
        for dep in piece.uses:
            if dep not in pieces or dep == piece.name:
                problems.append(f"{where}.pxd: '# uses: {dep}' names no other piece")
        needed: set[str] = set()
        for src in piece.sources:
            mine = own_names(piece, src, root)
            for name, line in src.used.items():
                if name in mine:
                    continue
                if name in owner:
                    dep = owner[name]
                    needed.add(dep)
                    if dep not in piece.uses:
                        problems.append(
                            f"{src.path.relative_to(root)}:{line}: {name} is {dep}'s, and {dep} "
                            f"is not in its # uses"
                        )
                    elif name in pieces[dep].c_defined and name not in pieces[dep].exported:
                        problems.append(
                            f"{src.path.relative_to(root)}:{line}: {name} is private to {dep} "
                            f"(not declared in {dep}.pxd)"
                        )
                elif name in importers:
                    problems.append(
                        f"{src.path.relative_to(root)}:{line}: {name} is bound only by the "
                        f"cimport/import of {', '.join(sorted(importers[name]))}: import it here"
                    )
        for dep in piece.uses:
            if dep in pieces and dep not in needed:
                problems.append(f"{where}.pxd: '# uses: {dep}' but it uses nothing of {dep}")
    graph = {p.name: [u for u in p.uses or [] if u in pieces] for p in pieces.values()}
    if loop := cycle(graph):
        problems.append(f"{tree.root}: the uses form a cycle: {' -> '.join(loop)}")
    problems += check_roots(tree, pieces, root)
    files = [path for folder in tree.folders for path in sorted((root / folder).iterdir())]
    for path in files + [root / f"{tree.root}.pyx", root / f"{tree.root}.pxd"]:
        if path.is_file() and (count := path.read_text().count("\n")) > MAX_LINES:
            problems.append(f"{path.relative_to(root)}: {count} lines (at most {MAX_LINES})")
    return problems


def check_roots(tree: Tree, pieces: dict[str, Piece], root: Path) -> list[str]:
    """The root includes each piece once by its folder and name (its folders lie beside it), in
    dependency order across the folders."""
    problems = []
    for ext in ("pyx", "pxd"):
        path = root / f"{tree.root}.{ext}"
        src = parse(path)
        if src.c_defs or src.py_defs:
            problems.append(
                f"{tree.root}.{ext} defines {sorted(src.c_defs | src.py_defs)}: "
                f"a root only includes its pieces"
            )
        expected = [p.name for p in pieces.values() if getattr(p, ext) is not None]
        included = [
            inc[: -len(ext) - 1]
            for inc in src.includes
            if inc.endswith("." + ext) and inc[: -len(ext) - 1] in pieces
        ]
        if sorted(included) != sorted(expected) or len(src.includes) != len(included):
            problems.append(
                f"{tree.root}.{ext} includes {src.includes}, not each of {expected} once"
            )
        seen: set[str] = set()
        for name in included:
            late = [
                u
                for u in pieces[name].uses or []
                if u in pieces and u not in seen and getattr(pieces[u], ext) is not None
            ]
            if late:
                problems.append(
                    f"{tree.root}.{ext} includes {name} before {late}: not in dependency order"
                )
            seen.add(name)
    return problems


def check_unique(tree: Tree, root: Path = ROOT) -> list[str]:
    """Names defined by two pieces of the tree (one module: Cython rejects a second C-level
    definition, but a second Python-level one silently rebinds the first)."""
    where: dict[str, list[str]] = {}
    for piece in load(tree, root).values():
        for name in piece.defined:
            where.setdefault(name, []).append(piece.name)
    return [
        f"{name} is defined in {', '.join(sorted(set(places)))}"
        for name, places in sorted(where.items())
        if len(set(places)) > 1
    ]


# ---------------------------------------------------------------- the loader (plain C)

LOADER = "p11fast/loader"


def check_c_files(folder: str, root: Path = ROOT) -> list[str]:
    """Each C file of `folder` at most MAX_LINES long and opening with the comment that says
    what it owns."""
    problems = []
    for path in sorted((root / folder).glob("*.[ch]")):
        text = path.read_text()
        if (count := text.count("\n")) > MAX_LINES:
            problems.append(f"{path.relative_to(root)}: {count} lines (at most {MAX_LINES})")
        if not text.startswith("/*"):
            problems.append(f"{path.relative_to(root)}: no header comment saying what it owns")
    return problems


# ---------------------------------------------------------------- the real trees


@pytest.mark.parametrize("tree", TREES, ids=[t.root for t in TREES])
def test_the_extension_keeps_the_layout_of_pieces(tree):
    assert check_tree(tree) == []


@pytest.mark.parametrize("tree", TREES, ids=[t.root for t in TREES])
def test_no_name_is_defined_by_two_pieces_of_the_extension(tree):
    assert check_unique(tree) == []


def test_the_loaders_files_are_short_and_say_what_they_own():
    assert check_c_files(LOADER) == []


def test_a_long_or_unexplained_c_file_is_reported(tmp_path):
    write(tmp_path, {"c/ok.c": "/* ok */\n", "c/long.c": "/* long */\n" + "\n" * MAX_LINES,
                     "c/bare.h": "#define X 1\n"})  # fmt: skip
    problems = check_c_files("c", tmp_path)
    assert problems == ["c/bare.h: no header comment saying what it owns",
                        f"c/long.c: {MAX_LINES + 1} lines (at most {MAX_LINES})"]  # fmt: skip


# ---------------------------------------------------------------- the checks themselves

DEMO = Tree("pkg/_demo", ("pkg/demo",))
CLEAN = {
    "pkg/_demo.pyx": 'include "demo/low.pyx"\ninclude "demo/high.pyx"\n',
    "pkg/_demo.pxd": 'include "demo/low.pxd"\ninclude "demo/high.pxd"\n',
    "pkg/demo/low.pxd": (
        "# low: the bottom piece.\n# uses:\n\ncdef struct low_t:\n    int n\n"
        "cdef int low_fn(low_t *x) noexcept nogil\n"
    ),
    "pkg/demo/low.pyx": (
        "from libc.string cimport memcpy\n\ncdef int _low_private() noexcept nogil:\n"
        "    return 1\n\n\ncdef int low_fn(low_t *x) noexcept nogil:\n"
        "    memcpy(x, x, 0)\n    return x.n + _low_private()\n\n\ndef low_py():\n    return 2\n"
    ),
    "pkg/demo/high.pxd": (
        "# high: the top piece.\n# uses: low\n\ncdef int high_fn(low_t *x) noexcept nogil\n"
    ),
    "pkg/demo/high.pyx": (
        'cdef int high_fn(low_t *x) noexcept nogil:\n    """Calls low_fn."""\n'
        "    return low_fn(x)  # not _low_private\n\n\ndef high_py():\n    return low_py()\n"
    ),
}


def write(tmp_path: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    return tmp_path


def test_a_clean_piece_set_passes_every_check(tmp_path):
    assert check_tree(DEMO, write(tmp_path, CLEAN)) == []


VIOLATIONS = {
    "a private function of another piece": (
        {
            "pkg/demo/high.pyx": "cdef int high_fn(low_t *x) noexcept nogil:\n"
            "    return low_fn(x) + _low_private()\n"
        },
        "_low_private is private to demo/low",
    ),
    "a piece missing from # uses": (
        {
            "pkg/demo/high.pxd": "# high: the top piece.\n# uses:\n\n"
            "cdef int high_fn(low_t *x) noexcept nogil\n"
        },
        "low_fn is demo/low's, and demo/low is not in its # uses",
    ),
    "a cycle": (
        {
            "pkg/demo/low.pxd": "# low: the bottom piece.\n# uses: high\n\ncdef struct low_t:\n"
            "    int n\ncdef int low_fn(low_t *x) noexcept nogil\n",
            "pkg/demo/low.pyx": "cdef int low_fn(low_t *x) noexcept nogil:\n"
            "    return high_fn(x)\n\n\ndef low_py():\n    return 2\n",
        },
        "the uses form a cycle: demo/high -> demo/low -> demo/high",
    ),
    "an idle # uses entry": (
        {
            "pkg/demo/high.pyx": "cdef int high_fn(int x) noexcept nogil:\n    return x\n",
            "pkg/demo/high.pxd": "# high: the top piece.\n# uses: low\n\n"
            "cdef int high_fn(int x) noexcept nogil\n",
        },
        "'# uses: demo/low' but it uses nothing of demo/low",
    ),
    "a file over the limit": (
        {"pkg/demo/low.pyx": CLEAN["pkg/demo/low.pyx"] + "\n" * MAX_LINES},
        f"(at most {MAX_LINES})",
    ),
    "includes out of dependency order": (
        {"pkg/_demo.pxd": 'include "demo/high.pxd"\ninclude "demo/low.pxd"\n'},
        "includes demo/high before ['demo/low']",
    ),
    "a piece the root leaves out": (
        {"pkg/_demo.pyx": 'include "demo/low.pyx"\n'},
        "not each of ['demo/high', 'demo/low'] once",
    ),
    "a definition in the root": (
        {
            "pkg/_demo.pyx": 'include "demo/low.pyx"\ninclude "demo/high.pyx"\n\ndef extra():\n'
            "    pass\n"
        },
        "a root only includes its pieces",
    ),
    "a cimport made by another piece": (
        {
            "pkg/demo/high.pyx": CLEAN["pkg/demo/high.pyx"].replace(
                "return low_fn(x)", "memcpy(x, x, 0)\n    return low_fn(x)"
            )
        },
        "memcpy is bound only by the cimport/import of demo/low",
    ),
    "a .pxd leaning on its .pyx's cimport": (
        {
            "pkg/demo/low.pxd": CLEAN["pkg/demo/low.pxd"]
            + "cdef void low_copy(size_t n) noexcept nogil\n",
            "pkg/demo/low.pyx": "from libc.stddef cimport size_t\n"
            + CLEAN["pkg/demo/low.pyx"]
            + "\n\ncdef void low_copy(size_t n) noexcept nogil:\n    pass\n",
        },
        "size_t is bound only by the cimport/import of demo/low",
    ),
    "a .pxd without its header": (
        {"pkg/demo/high.pxd": "# uses: low\ncdef int high_fn(low_t *x) noexcept nogil\n"},
        "does not begin with '# high: <what it owns>'",
    ),
}


@pytest.mark.parametrize("change", VIOLATIONS, ids=list(VIOLATIONS))
def test_each_kind_of_violation_is_reported(tmp_path, change):
    files, expected = VIOLATIONS[change]
    problems = check_tree(DEMO, write(tmp_path, {**CLEAN, **files}))
    assert any(expected in p for p in problems), problems


def test_a_local_named_like_another_pieces_function_is_no_use_of_it(tmp_path):
    high = {
        "pkg/demo/high.pxd": "# high: the top piece.\n# uses:\n\n"
        "cdef int high_fn(int x) noexcept nogil\n",
        "pkg/demo/high.pyx": "cdef int high_fn(int x) noexcept nogil:\n    cdef int low_fn = x\n"
        "    return low_fn\n",
    }
    assert check_tree(DEMO, write(tmp_path, {**CLEAN, **high})) == []


# DEMO's pieces and a second folder's, in one extension: "other/top" uses "demo/high".
TWO_FOLDERS = Tree("pkg/_demo", ("pkg/demo", "pkg/other"))
WITH_OTHER = {
    **CLEAN,
    "pkg/_demo.pyx": CLEAN["pkg/_demo.pyx"] + 'include "other/top.pyx"\n',
    "pkg/_demo.pxd": CLEAN["pkg/_demo.pxd"] + 'include "other/top.pxd"\n',
    "pkg/other/top.pxd": "# top: the other folder's piece.\n# uses: demo/high\n",
    "pkg/other/top.pyx": "def top_py():\n    return high_py()\n",
}


def test_a_piece_uses_another_folders_piece_by_folder_and_name(tmp_path):
    assert check_tree(TWO_FOLDERS, write(tmp_path, WITH_OTHER)) == []


def test_a_use_of_another_folders_piece_is_checked_like_any_other(tmp_path):
    top = WITH_OTHER["pkg/other/top.pyx"].replace("high_py()", "high_py() + low_py()")
    problems = check_tree(TWO_FOLDERS, write(tmp_path, {**WITH_OTHER, "pkg/other/top.pyx": top}))
    assert problems == [
        "pkg/other/top.pyx:2: low_py is demo/low's, and demo/low is not in its # uses"
    ]


def test_another_folders_piece_named_without_its_folder_is_reported(tmp_path):
    pxd = WITH_OTHER["pkg/other/top.pxd"].replace("# uses: demo/high", "# uses: high")
    problems = check_tree(TWO_FOLDERS, write(tmp_path, {**WITH_OTHER, "pkg/other/top.pxd": pxd}))
    assert "pkg/other/top.pxd: '# uses: other/high' names no other piece" in problems


def test_a_name_defined_by_pieces_of_two_folders_is_reported(tmp_path):
    other = {name.replace("demo", "other"): text for name, text in CLEAN.items()}
    write(tmp_path, {**CLEAN, **other})
    problems = check_unique(TWO_FOLDERS, tmp_path)
    assert "_low_private is defined in demo/low, other/low" in problems
