"""The house's shape: imports point downward between the sub-packages, each says what it
owns, and graphs are compiled one way."""

from __future__ import annotations

import ast
import re
from pathlib import Path

from conftest import load_script

ROOT = Path(__file__).resolve().parent.parent


def code_shape():
    return load_script("code_shape")


def test_imports_point_downward_between_the_layers():
    _, upward = code_shape().shape(ROOT / "dcgan")
    assert upward == []


def test_an_upward_import_is_caught(tmp_path):
    package = tmp_path / "dcgan"
    (package / "models").mkdir(parents=True)
    (package / "models" / "bad.py").write_text("from dcgan.training.loop import train\n")
    (package / "training").mkdir()
    (package / "training" / "loop.py").write_text("from dcgan.models import bad\n")
    assert code_shape().shape(package)[1] == ["models -> training"]


def test_every_sub_package_opens_with_what_it_owns():
    for init in sorted((ROOT / "dcgan").glob("*/__init__.py")):
        docstring = ast.get_docstring(ast.parse(init.read_text()))
        assert docstring and len(docstring) > 40, init.parent.name


def test_every_graph_in_the_package_is_compiled_through_runtime_compiled():
    # runtime.compiled turns autograph off; so the next one cannot forget it.
    direct = [
        f"{path.relative_to(ROOT)}:{number}"
        for path in sorted((ROOT / "dcgan").rglob("*.py"))
        if path.name != "runtime.py"
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if re.search(r"\btf\.function\b", line.split("#")[0])
    ]
    assert direct == []
