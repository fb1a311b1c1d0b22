"""The TensorFlow runtime helpers: graphs compiled from the code that was imported."""

from __future__ import annotations

import importlib
import linecache
import sys

from dcgan.runtime import compiled, import_tensorflow

tf = import_tensorflow()


def test_a_compiled_function_runs_the_code_imported_not_the_file_as_edited_since(
    tmp_path, monkeypatch
):
    # An editable install updated under a running training: the function is traced for
    # the first time after its file changed.
    (tmp_path / "edited_module.py").write_text("def double(x):\n    return x * 2.0\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    module = importlib.import_module("edited_module")
    try:
        (tmp_path / "edited_module.py").write_text("def double(x):\n    return x * 5.0\n")
        linecache.clearcache()
        assert float(compiled(module.double)(tf.constant(3.0))) == 6.0
    finally:
        sys.modules.pop("edited_module", None)
