"""The shape of the package for a reader: the longest functions, the largest parameter
counts, and the imports between sub-packages (which must point downward, with no cycles).

    .venv/bin/python scripts/code_shape.py [PACKAGE_DIR]
"""

from __future__ import annotations

import ast
import sys
from collections import defaultdict
from pathlib import Path

# Lower layers first: a module may import from its own layer's package or from below.
LAYERS = [
    {"errors", "runtime", "__init__"},
    {"files"},
    {"config", "imaging"},
    {"storage"},
    {"data", "models"},
    {"metrics"},
    {"training", "generation"},
    {"web"},
    {"cli", "__main__"},
]


def functions(tree: ast.AST, module: str):
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            args = node.args
            names = [a.arg for a in args.posonlyargs + args.args + args.kwonlyargs]
            count = len([n for n in names if n not in ("self", "cls")])
            yield f"{module}:{node.lineno} {node.name}", node.end_lineno - node.lineno + 1, count


def top_package(module: str) -> str:
    return module.split(".")[1] if "." in module else module


def shape(root: Path) -> tuple[list[tuple[str, int, int]], list[str]]:
    """(name, lines, parameters) of every function, and every import against the layers."""
    rows, edges = [], defaultdict(set)
    for path in sorted(root.rglob("*.py")):
        module = ".".join(path.relative_to(root.parent).with_suffix("").parts)
        tree = ast.parse(path.read_text(encoding="utf-8"))
        rows += list(functions(tree, str(path.relative_to(root.parent))))
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("dcgan"):
                if node.module == "dcgan":  # modules, or a name of the package (__version__)
                    targets = [
                        f"dcgan.{alias.name}"
                        if (root / alias.name).is_dir() or (root / f"{alias.name}.py").is_file()
                        else "dcgan.__init__"
                        for alias in node.names
                    ]
                else:
                    targets = [node.module]
                for target in targets:
                    edges[top_package(module)].add(top_package(target))
    layer_of = {name: i for i, layer in enumerate(LAYERS) for name in layer}
    upward = [
        f"{a} -> {b}"
        for a, targets in sorted(edges.items())
        for b in sorted(targets)
        if a != b and layer_of.get(b, len(LAYERS)) > layer_of.get(a, -1)
    ]
    return rows, upward


def main() -> None:
    root = Path(sys.argv[1] if len(sys.argv) > 1 else "dcgan")
    rows, upward = shape(root)
    print("longest functions (lines):")
    for name, length, _ in sorted(rows, key=lambda r: -r[1])[:8]:
        print(f"  {length:4d}  {name}")
    print("most parameters:")
    for name, _, count in sorted(rows, key=lambda r: -r[2])[:8]:
        print(f"  {count:4d}  {name}")
    print("imports against the layers:", ", ".join(upward) if upward else "none")


if __name__ == "__main__":
    main()
