"""The layering DESIGN.md describes, checked on the source: no import circle, nothing imports
upward, and one training loop."""

import ast
import re
from pathlib import Path

import pytest

SOURCE = Path(__file__).resolve().parents[1] / "src" / "aekit"


def module_name(path: Path) -> str:
    parts = list(path.relative_to(SOURCE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph() -> dict[str, set[str]]:
    """aekit module -> the aekit modules it imports anywhere (inside functions and TYPE_CHECKING too)."""
    modules = {module_name(p): p for p in SOURCE.rglob("*.py")}
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package.split(".")[: len(package.split(".")) - node.level + 1]
                    target = ".".join(base + ([node.module] if node.module else []))
                elif node.module and node.module.startswith("aekit"):
                    target = node.module
                else:
                    continue
                for alias in node.names:  # `from . import train` is an import of aekit.train itself
                    imported = f"{target}.{alias.name}" if f"{target}.{alias.name}" in modules else target
                    if imported in modules and imported != name:
                        graph[name].add(imported)
            elif isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.name in modules and alias.name != name:
                        graph[name].add(alias.name)
    return graph


def reachable(graph: dict[str, set[str]], start: str) -> set[str]:
    seen, todo = set(), [start]
    while todo:
        for nxt in graph[todo.pop()]:
            if nxt not in seen:
                seen.add(nxt)
                todo.append(nxt)
    return seen


def test_no_import_circle():
    graph = import_graph()
    circles = sorted(name for name in graph if name != "aekit" and name in reachable(graph, name))
    assert circles == [], f"modules on an import circle: {circles}"


@pytest.mark.parametrize(
    "module, forbidden",
    [
        ("aekit.metrics", r"aekit\.(applications|cli|train|callbacks)"),
        ("aekit.io", r"aekit\.(applications|cli|train|callbacks)"),
        ("aekit.files", r"aekit\.(model|applications|cli|train)"),
        ("aekit.penalties", r"aekit\.(model|train|applications)"),
        ("aekit.latents", r"aekit\.(model|penalties|train)"),
        ("aekit.model", r"aekit\.(train|callbacks|steps|applications|cli)"),
        ("aekit.steps", r"aekit\.(train|callbacks|cli|applications)"),
        ("aekit.callbacks", r"aekit\.(train|cli|applications)"),
    ],
)
def test_nothing_imports_upward(module, forbidden):
    reached = reachable(import_graph(), module)
    assert not [m for m in reached if re.fullmatch(forbidden + r"(\..*)?", m)], sorted(reached)


def test_data_imports_nothing_from_the_loop_or_the_models():
    graph = import_graph()
    for module in (m for m in graph if m == "aekit.data" or m.startswith("aekit.data.")):
        reached = reachable(graph, module)
        loop = {"aekit.train", "aekit.callbacks", "aekit.steps", "aekit.batches", "aekit.model", "aekit.io"}
        assert not reached & loop, (module, sorted(reached & loop))


def test_applications_train_nothing():
    for path in (SOURCE / "applications").glob("*.py"):
        text = path.read_text()
        assert ".backward(" not in text and "optimizer" not in text.lower(), path.name


def test_backward_is_called_by_the_loop_alone():
    callers = sorted(p.name for p in SOURCE.rglob("*.py") if ".backward(" in p.read_text())
    assert callers == ["train.py"]


def test_no_latent_class_tests_outside_the_latents():
    """Abilities of latents are declared (``latent.abilities``), not found by testing classes."""
    pattern = re.compile(r"isinstance\([^)]*(Latent|GaussianLatent|BinaryLatent|DeterministicLatent)\b")
    offenders = [p.name for p in SOURCE.rglob("*.py") if p.name != "latents.py" and pattern.search(p.read_text())]
    assert offenders == []
