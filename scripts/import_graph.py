"""The import structure of flashvid: rooms (modules), arrows (imports that run, at module level or inside functions;
not those under ``if TYPE_CHECKING:``) and the ones that run back up the layers of docs/architecture.md, and circles.

    python scripts/import_graph.py            # counts, the arrows that run back up, the circles
    python scripts/import_graph.py --dot      # a Graphviz drawing on stdout

Layers, from the bottom: the data side, the models, training (the LightningModule and what it uses), what runs a
trained model (inference, reports, export, pretraining, doctor), then the command line. An arrow from a lower layer
to a higher one runs back up.
"""

from __future__ import annotations

import argparse
import ast
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1] / "flashvid"
# room -> layer (0 bottom); a room not listed takes the layer of its package's entry, else of its prefix
LAYERS: dict[str, int] = {
    "_compat": 0, "data": 0, "source_registry": 0, "rundir": 0, "failures": 0,
    "checkpoint": 0,  # checkpoint: the safe loader, atomic saves
    "models": 1,
    "classifier": 2, "finetuning": 2, "ema": 2, "validation_policy": 2, "trainer": 2,
    "callbacks": 2, "warmstart": 2, "loggers": 2, "schedules": 2, "metrics": 2, "loading": 2, "losses": 2, "optim": 2,
    "evaluation": 2, "checkpoint_record": 2,
    "inference": 3, "predictions": 3, "timeline": 3, "reports": 3, "export": 3, "embed": 3, "pretraining": 3,
    "doctor": 3,
    "commands": 4, "cli": 4, "__main__": 4, "__init__": 4,
}


def room_of(module: str) -> str:
    """``flashvid.data.sources`` -> ``data.sources``; a package's ``__init__`` is the package."""
    parts = module.split(".")[1:]
    return ".".join(parts) or "__init__"


def layer_of(room: str) -> int:
    parts = room.split(".")
    for i in range(len(parts), 0, -1):
        if ".".join(parts[:i]) in LAYERS:
            return LAYERS[".".join(parts[:i])]
    raise KeyError(f"no layer for {room}: add it to LAYERS")


def modules() -> dict[str, Path]:
    out = {}
    for path in sorted(ROOT.rglob("*.py")):
        rel = path.relative_to(ROOT.parent).with_suffix("")
        name = ".".join(rel.parts)
        out[name.removesuffix(".__init__")] = path
    return out


def imports(name: str, path: Path, known: set[str]) -> set[str]:
    """The flashvid modules ``name`` imports (relative imports resolved), each as the longest known module name."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in _runtime_nodes(ast.parse(path.read_text())):
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            targets = [f"{base}.{a.name}" for a in node.names] + [base]
        for t in targets:
            while t and t not in known:
                t = t.rpartition(".")[0]
            if t and t != name and t.startswith("flashvid"):
                found.add(t)
    return found


def _runtime_nodes(tree: ast.AST) -> list[ast.AST]:
    """Every node except those under ``if TYPE_CHECKING:`` (annotations only: no import runs there)."""
    out: list[ast.AST] = []
    todo = [tree]
    while todo:
        node = todo.pop()
        out.append(node)
        if isinstance(node, ast.If) and getattr(node.test, "id", getattr(node.test, "attr", None)) == "TYPE_CHECKING":
            todo.extend(node.orelse)
            continue
        todo.extend(ast.iter_child_nodes(node))
    return out


def graph() -> dict[str, set[str]]:
    mods = modules()
    known = set(mods)
    edges: dict[str, set[str]] = {}
    for name, path in mods.items():
        src = room_of(name)
        for target in imports(name, path, known):
            dst = room_of(target)
            if dst != src and not (src == "__init__" or dst == "__init__"):
                edges.setdefault(src, set()).add(dst)
    return edges


def circles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected groups of more than one room (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []
    sys.setrecursionlimit(10000)

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in edges.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                on.discard(w)
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                out.append(sorted(group))

    for v in sorted(set(edges) | {w for ws in edges.values() for w in ws}):
        if v not in index:
            visit(v)
    return out


def back_up(edges: dict[str, set[str]]) -> list[tuple[str, str]]:
    return sorted((a, b) for a, bs in edges.items() for b in bs if layer_of(b) > layer_of(a))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dot", action="store_true", help="print a Graphviz drawing")
    args = parser.parse_args()
    edges = graph()
    if args.dot:
        print("digraph flashvid {\n  rankdir=BT;")
        for a, bs in sorted(edges.items()):
            for b in sorted(bs):
                style = ' [color=red]' if layer_of(b) > layer_of(a) else ""
                print(f'  "{a}" -> "{b}"{style};')
        print("}")
        return
    rooms = set(edges) | {b for bs in edges.values() for b in bs}
    up = back_up(edges)
    loops = circles(edges)
    print(f"rooms {len(rooms)}, arrows {sum(len(b) for b in edges.values())}, back up {len(up)}, circles {len(loops)}")
    for a, b in up:
        print(f"  back up: {a} (layer {layer_of(a)}) -> {b} (layer {layer_of(b)})")
    for group in loops:
        print(f"  circle: {' <-> '.join(group)}")


if __name__ == "__main__":
    main()
