"""jflows and jflows.interop import without the peers; a bridge names the missing one."""

import subprocess
import sys

SCRIPT = """
import importlib.abc, sys

class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("distrax", "flowjax", "paramax"):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)

sys.meta_path.insert(0, Block())
import jflows, jflows.interop, jflows.interop.common, jflows.interop.tfp, jflows.interop.nnx
try:
    import jflows.interop.distrax
except ModuleNotFoundError as err:
    print("missing:", err.name)
"""


def test_jflows_imports_without_distrax_and_flowjax():
    out = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True,
                         check=True, timeout=600)
    assert out.stdout.strip() == "missing: distrax", out.stdout + out.stderr
