"""The one-way flow of docs/architecture.md, enforced: no room imports from above or beside it.

The layers are read from the ``layers`` block of docs/architecture.md, so the document and the
check cannot drift. Imports are read with ``ast`` (nothing is imported): ``from ..x import``,
``from fisher_verify.x import``, ``import fisher_verify.x`` and ``fv.<name>`` after
``import fisher_verify as fv`` (resolved through the package's lazy export table).
"""

from __future__ import annotations

import ast
from pathlib import Path

import fisher_verify

ROOT = Path(fisher_verify.__file__).resolve().parent / "_src"  # the rooms (private)
DOC = ROOT.parents[1] / "docs" / "architecture.md"
EXPORTS: dict[str, str] = fisher_verify._EXPORTS  # public name -> defining module


def read_layers(text: str) -> dict[str, int]:
    """Room -> layer index (0 = bottom) from the ```layers block, listed top to bottom."""
    block = text.split("```layers", 1)[1].split("```", 1)[0]
    lines = [line.split() for line in block.strip().splitlines() if line.strip()]
    return {room: len(lines) - 1 - i for i, rooms in enumerate(lines) for room in rooms}


def room_of(path: Path) -> str | None:
    """The room a file of the package belongs to (the root __init__ belongs to none)."""
    rel = path.relative_to(ROOT)
    if len(rel.parts) > 1:
        return rel.parts[0]
    return None if rel.stem == "__init__" else rel.stem


def imported_rooms(source: str, path: Path) -> list[tuple[str, int]]:
    """(room, line) for every reference of ``source`` (the file at ``path``) to another part of
    the package; the root's ``__version__`` and lazy exports are resolved, not counted."""
    rel_parts = list(path.relative_to(ROOT).parts[:-1])
    tree = ast.parse(source)
    found: list[tuple[str, int]] = []
    aliases: set[str] = set()

    def add(module: str, names: list[str], line: int) -> None:
        parts = [p for p in module.split(".") if p]
        if parts:
            found.append((parts[0], line))
            return
        for name in names:  # from the package root itself
            if name == "__version__":
                continue
            if name in EXPORTS:
                found.append((EXPORTS[name].split(".")[2], line))
            else:
                found.append((name, line))

    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = rel_parts[: len(rel_parts) - (node.level - 1)]
                if len(base) < len(rel_parts) or not rel_parts:
                    add(".".join([*base, node.module or ""]), [a.name for a in node.names], node.lineno)
                elif node.module is None and not rel_parts:
                    add("", [a.name for a in node.names], node.lineno)
            elif node.module and (node.module + ".").startswith("fisher_verify._src."):
                add(node.module[len("fisher_verify._src") :], [a.name for a in node.names], node.lineno)
        elif isinstance(node, ast.Import):
            for a in node.names:
                if a.name == "fisher_verify":
                    aliases.add(a.asname or a.name)
                elif a.name.startswith("fisher_verify._src."):
                    add(a.name[len("fisher_verify._src.") :], [], node.lineno)
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Name)
            and node.value.id in aliases
            and node.attr in EXPORTS
        ):
            found.append((EXPORTS[node.attr].split(".")[2], node.lineno))
    return found


def violations(layers: dict[str, int], files: list[tuple[Path, str]]) -> list[str]:
    """Every reference that points to the same layer (another room) or above, and every room
    that is not on the list."""
    out = []
    for path, source in files:
        room = room_of(path)
        if room is None:
            continue
        if room not in layers:
            out.append(f"{path.relative_to(ROOT)}: room {room!r} is not in docs/architecture.md")
            continue
        for target, line in imported_rooms(source, path):
            if target == room:
                continue
            if target not in layers:
                out.append(f"{path.relative_to(ROOT)}:{line}: imports {target!r}, not on the list")
            elif layers[target] >= layers[room]:
                out.append(
                    f"{path.relative_to(ROOT)}:{line}: {room} (layer {layers[room]}) imports "
                    f"{target} (layer {layers[target]})"
                )
    return out


def package_files() -> list[tuple[Path, str]]:
    return [(p, p.read_text(encoding="utf-8")) for p in sorted(ROOT.rglob("*.py"))]


def test_every_import_points_down() -> None:
    layers = read_layers(DOC.read_text(encoding="utf-8"))
    assert violations(layers, package_files()) == []


def test_the_check_can_fail() -> None:
    """An upward import, a sideways one, a lazy ``fv.`` use and an unlisted room are each caught."""
    layers = read_layers(DOC.read_text(encoding="utf-8"))
    assert layers["symbolic"] < layers["families"] < layers["identities"] < layers["cli"]
    assert layers["identities"] == layers["networks"]
    cases = {
        ROOT / "symbolic" / "x.py": "from ..families.family import Family\n",
        ROOT / "identities" / "x.py": "from fisher_verify._src.networks import network\n",
        ROOT / "families" / "x.py": "def f():\n    import fisher_verify as fv\n    return fv.exact_fisher\n",
        ROOT / "newroom" / "x.py": "x = 1\n",
    }
    found = violations(layers, list(cases.items()))
    assert len(found) == 4, found
    assert any("symbolic (layer" in v and "imports families" in v for v in found)
    assert any("imports networks" in v for v in found)
    assert any("imports models" in v for v in found)  # fv.exact_fisher is defined in models
    assert any("'newroom' is not in docs/architecture.md" in v for v in found)


def front_door_uses(source: str, path: Path) -> list[int]:
    """Lines where a module of the package climbs to the root for a public name (``import
    fisher_verify as fv``, ``from fisher_verify import x``, ``from .. import x`` at the root)
    instead of importing it from the room below that defines it; ``__version__`` is allowed."""
    depth = len(path.relative_to(ROOT).parts) - 1
    out = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import) and any(a.name == "fisher_verify" for a in node.names):
            out.append(node.lineno)
        elif isinstance(node, ast.ImportFrom):
            root = (node.level == 0 and node.module == "fisher_verify") or (
                node.level >= depth + 1 and node.module is None)
            if root and any(a.name in EXPORTS for a in node.names):
                out.append(node.lineno)
    return out


def test_no_module_climbs_to_the_front_door() -> None:
    found = [f"{p.relative_to(ROOT)}:{line}" for p, src in package_files()
             for line in front_door_uses(src, p)]
    assert found == []


def test_the_front_door_check_can_fail() -> None:
    path = ROOT / "report" / "x.py"
    assert front_door_uses("def f():\n    import fisher_verify as fv\n", path) == [2]
    assert front_door_uses("from fisher_verify import family\n", path) == [1]
    assert front_door_uses("from ... import family\n", path) == [1]
    assert front_door_uses("from .. import __version__\n", path) == []
    assert front_door_uses("from ..families.registry import family\n", path) == []


def test_every_room_says_what_it_holds_and_may_import() -> None:
    for init in sorted(ROOT.glob("*/__init__.py")):
        doc = ast.get_docstring(ast.parse(init.read_text(encoding="utf-8"))) or ""
        room = init.parent.name
        assert doc.startswith(f"{room} room:"), init
        assert "May import:" in doc, init
        assert "see DESIGN" not in doc and "issue" not in doc.lower(), init


# --- no import circles inside the package --------------------------------------------------------


def module_name(path: Path) -> str:
    """``fisher_verify.room.module`` for a file of the package (a package for ``__init__``)."""
    package = ROOT.parts[-2:]  # ("fisher_verify", "_src"): ROOT is where the rooms are
    parts = [*package, *path.relative_to(ROOT).with_suffix("").parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(source: str, path: Path, modules: set[str]) -> list[tuple[str, int]]:
    """(module, line) for every import of another module of the package in ``source``, at
    module level or inside a function, relative or absolute, ``fv.<name>`` included.

    ``from .pkg import name`` counts as an import of ``pkg.name`` when that is a module of the
    package (``modules``), else of ``pkg``; an export of the root resolves to its defining
    module."""
    here = module_name(path)
    package = here if path.name == "__init__.py" else here.rsplit(".", 1)[0]
    tree = ast.parse(source)
    found: list[tuple[str, int]] = []
    aliases: set[str] = set()

    def add(base: str, names: list[str], line: int) -> None:
        for name in names or [""]:
            full = f"{base}.{name}" if name else base
            if full in modules:
                found.append((full, line))
            elif base == "fisher_verify" and name in EXPORTS:
                found.append((EXPORTS[name], line))
            elif base in modules and base != "fisher_verify":
                found.append((base, line))

    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - (node.level - 1)])
                if node.module:
                    base = f"{base}.{node.module}"
            elif node.module and (node.module + ".").startswith("fisher_verify._src."):
                base = node.module
            elif node.module == "fisher_verify":
                base = "fisher_verify"
            else:
                continue
            add(base, [a.name for a in node.names], node.lineno)
        elif isinstance(node, ast.Import):
            for a in node.names:
                if a.name == "fisher_verify":
                    aliases.add(a.asname or a.name)
                elif a.name.startswith("fisher_verify._src.") and a.name in modules:
                    found.append((a.name, node.lineno))
    for node in ast.walk(tree):
        if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)
                and node.value.id in aliases and node.attr in EXPORTS):
            found.append((EXPORTS[node.attr], node.lineno))
    return [(m, line) for m, line in found if m != here]


def import_cycles(files: list[tuple[Path, str]]) -> list[str]:
    """Every circle of imports between modules, each named as ``a:line -> b:line -> … -> a``
    (one per strongly connected component, Tarjan's algorithm)."""
    modules = {module_name(p) for p, _ in files}
    edges: dict[str, dict[str, int]] = {m: {} for m in modules}
    for path, source in files:
        src = module_name(path)
        for target, line in imported_modules(source, path, modules):
            edges[src].setdefault(target, line)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    components: list[list[str]] = []

    def visit(v: str) -> None:  # recursive Tarjan; the package is far shallower than the limit
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in sorted(edges[v]):
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
                components.append(sorted(comp))

    for v in sorted(modules):
        if v not in index:
            visit(v)
    out = []
    for comp in components:  # one concrete circle through the component's first module
        inside = set(comp)
        start = comp[0]
        path, seen = [start], {start}
        while True:
            nxt = sorted(w for w in edges[path[-1]] if w in inside)
            back = [w for w in nxt if w == start]
            step = back[0] if back and len(path) > 1 else next(
                (w for w in nxt if w not in seen), start)
            if step == start:
                break
            path.append(step)
            seen.add(step)
        hops = [f"{a} (line {edges[a][b]})" for a, b in zip(path, path[1:] + [start])]
        out.append(" -> ".join(hops) + f" -> {start}"
                   + (f" (circles among {', '.join(comp)})" if len(comp) > len(path) else ""))
    return out


def test_no_import_cycles() -> None:
    """No module imports, directly or through others, a module that imports it back; imports
    inside functions count (a function-level import only hides a circle, it does not remove
    one)."""
    assert import_cycles(package_files()) == []


def test_the_cycle_check_can_fail() -> None:
    """A circle through a function-level relative import, one through an absolute import and
    ``fv.<name>``, and a three-module circle are each found and named."""
    cases = [
        (ROOT / "fisher" / "a.py", "from .b import f\n"),
        (ROOT / "fisher" / "b.py", "def f():\n    from . import a\n    return a\n"),
        (ROOT / "models" / "c.py", "import fisher_verify._src.models.d\n"),
        (ROOT / "models" / "d.py", "import fisher_verify as fv\nx = fv.sample_estimators\n"),
        (ROOT / "fisher" / "estimators.py", "from ..models import c\n"),
        (ROOT / "families" / "p.py", "from .q import x\n"),
        (ROOT / "families" / "q.py", "from .r import x\n"),
        (ROOT / "families" / "r.py", "from fisher_verify._src.families.p import x\n"),
    ]
    found = import_cycles(cases)
    assert len(found) == 3, found
    assert any("fisher_verify._src.fisher.a (line 1) -> fisher_verify._src.fisher.b (line 2)" in c
               for c in found), found
    assert any("fisher_verify._src.models.c" in c and "fisher_verify._src.fisher.estimators" in c
               for c in found), found
    assert any(c.count("fisher_verify._src.families.") == 4 for c in found), found


def scipy_imports(files: list[tuple[Path, str]]) -> list[str]:
    """``file:line`` of every import of SciPy in ``files`` (module or function level)."""
    found = []
    for path, source in files:
        for node in ast.walk(ast.parse(source)):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            if any(n == "scipy" or n.startswith("scipy.") for n in names):
                found.append(f"{path.name}:{node.lineno}")
    return found


def test_the_main_job_needs_no_scipy() -> None:
    """The README's main job installs ``.[torch,report]`` only (no SciPy): neither the package
    nor a statement in proofs/ may import SciPy (ext-links once did, and erred there)."""
    files = [(p, p.read_text(encoding="utf-8")) for p in sorted(ROOT.parent.rglob("*.py"))]
    files += [(p, p.read_text(encoding="utf-8"))
              for p in sorted((ROOT.parent.parent / "proofs").glob("*.py"))]
    assert scipy_imports(files) == []
    assert scipy_imports([(Path("x.py"), "def f():\n    from scipy.special import gamma\n")]) == ["x.py:2"]
