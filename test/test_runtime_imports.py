"""Import structure of the package: no import circles anywhere in mtpano_ros/ (module-level and function-level
imports alike), the rooms point one way (DESIGN §2), and the option schema imports without torch."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "mtpano_ros"
ROOMS = ("geometry", "model", "runtime", "ros")  # each may import the ones before it, never the ones after


def _module_name(path: Path) -> str:
    rel = path.relative_to(PACKAGE.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def import_graph() -> dict[str, set[str]]:
    """{module: modules of mtpano_ros it imports}, from every import statement (also inside functions).

    ``from a.b import c`` points at ``a.b.c`` when that is a module, else at ``a.b`` (its ``__init__``). Parent
    packages that Python initialises on the way are not edges: importing ``a.b.c`` runs ``a/__init__`` first,
    which is not a circle as long as ``a/__init__`` itself does not import back.
    """
    modules = {_module_name(p): p for p in PACKAGE.rglob("*.py")}
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        is_pkg = path.name == "__init__.py"
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            targets = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = name.split(".") if is_pkg else name.split(".")[:-1]
                    anchor = anchor[:len(anchor) - (node.level - 1)]
                    base = ".".join(anchor + ([base] if base else []))
                for alias in node.names:
                    sub = f"{base}.{alias.name}"
                    targets.append(sub if sub in modules else base)
            for target in targets:
                if target in modules and target != name:
                    graph[name].add(target)
    return graph


def find_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every strongly connected component with more than one module (Tarjan), each as a sorted list."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []
    counter = [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_the_cycle_finder_finds_a_cycle():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert find_cycles(graph) == [["a", "b", "c"]]
    assert find_cycles({"a": {"b"}, "b": set()}) == []


def test_the_graph_sees_function_level_and_relative_imports():
    graph = import_graph()
    # resolve.load_model imports official inside the function; export imports resolve at module level
    assert "mtpano_ros.model.official" in graph["mtpano_ros.model.resolve"]
    assert "mtpano_ros.model.resolve" in graph["mtpano_ros.runtime.export"]
    assert len(graph) > 30


def test_no_import_circles_in_the_package():
    cycles = find_cycles(import_graph())
    assert not cycles, "import circles: " + "; ".join(" <-> ".join(c) for c in cycles)


def test_rooms_import_one_way():
    bad = []
    for mod, deps in import_graph().items():
        parts = mod.split(".")
        if len(parts) < 2 or parts[1] not in ROOMS:
            continue
        room = ROOMS.index(parts[1])
        for dep in deps:
            dparts = dep.split(".")
            if len(dparts) > 1 and dparts[1] in ROOMS and ROOMS.index(dparts[1]) > room:
                bad.append(f"{mod} -> {dep}")
    assert not bad, bad


def test_only_ros_imports_rclpy():
    offenders = []
    for path in PACKAGE.rglob("*.py"):
        if "ros" in path.relative_to(PACKAGE).parts[:1]:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else (
                [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            if any(n.split(".")[0] == "rclpy" for n in names):
                offenders.append(str(path))
    assert not offenders


def test_option_schema_imports_without_torch():
    """The launch file and the node's parameter table read RuntimeOptions; that must not pull in torch."""
    code = ("import sys; import mtpano_ros.runtime; from mtpano_ros.runtime.options import runtime_parameters; "
            "runtime_parameters(); bad = [m for m in ('torch', 'numpy', 'onnx', 'onnxruntime') if m in sys.modules]; "
            "print(bad); sys.exit(1 if bad else 0)")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stdout + res.stderr
