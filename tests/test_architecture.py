"""No import cycles between areas: each folder of bot/ (and the shared services bot/replies.py,
bot/search.py, bot/textcheck.py) may import another only if that one does not import it back,
directly or through others, counting imports inside functions too."""

from __future__ import annotations

import ast
from pathlib import Path

BOT = Path(__file__).resolve().parents[1] / "bot"
SHARED_SERVICES = ("replies", "search", "textcheck")


def areas() -> set[str]:
    return {p.name for p in BOT.iterdir() if (p / "__init__.py").exists()} | set(SHARED_SERVICES)


def imported_modules(tree: ast.AST) -> list[str]:
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            out += [f"{node.module}.{a.name}" for a in node.names] if node.module == "bot" else [node.module]
        elif isinstance(node, ast.Import):
            out += [a.name for a in node.names]
    return [m for m in out if m.startswith("bot.")]


def area_graph() -> dict[str, set[str]]:
    known = areas()
    graph: dict[str, set[str]] = {a: set() for a in known}
    for file in BOT.rglob("*.py"):
        source = file.relative_to(BOT).parts[0].removesuffix(".py")
        if source not in known:
            continue
        for module in imported_modules(ast.parse(file.read_text(encoding="utf-8"))):
            target = module.split(".")[1]
            if target in known and target != source:
                graph[source].add(target)
    return graph


def cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as a path (first area repeated at the end), or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        path.pop()
        state[node] = 2
        return None

    for start in sorted(graph):
        if start not in state and (found := visit(start)):
            return found
    return None


def test_the_checker_finds_a_cycle():
    assert cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert cycle({"a": {"b"}, "b": set()}) is None


def test_no_import_cycle_between_areas():
    graph = area_graph()
    assert {"publishing", "tickets", "inbound", "triage", "web"} <= set(graph)
    assert "outbox" in graph["tickets"] and "tickets" in graph["oversight"]  # the walk sees real imports
    found = cycle(graph)
    assert found is None, "import cycle between areas: " + " -> ".join(found)
