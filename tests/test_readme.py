"""The README's Quick start runs as written."""

import pathlib
import re

README = pathlib.Path(__file__).resolve().parents[1] / "README.md"


def _python_block_after(heading: str) -> str:
    text = README.read_text()
    section = text[text.index(heading):]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def test_quick_start_runs_and_fits():
    namespace = {}
    exec(compile(_python_block_after("## Quick start"), "README-quick-start", "exec"), namespace)
    assert namespace["samples"].shape == (5, 2)
    assert float(namespace["loss"]) < 4.4  # N((1,1), 4I) has entropy 4.22 nats
