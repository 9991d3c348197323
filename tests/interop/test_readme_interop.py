"""The README's interop examples (section "## Interop"), one per bridge, run as written."""

import pathlib
import re

import pytest

README = pathlib.Path(__file__).resolve().parents[2] / "README.md"
BRIDGES = {"distrax": "### distrax", "tfp": "### TFP-JAX", "flowjax": "### FlowJAX",
           "nnx": "### Flax NNX"}


def example(name: str) -> str:
    text = README.read_text()
    section = text[text.index("## Interop"):]
    subsection = section[section.index(BRIDGES[name]):]
    return re.search(r"```python\n(.*?)```", subsection, re.S).group(1)


@pytest.mark.parametrize("name", sorted(BRIDGES))
def test_readme_example_runs(name):
    namespace = {}
    exec(compile(example(name), f"<README interop: {name}>", "exec"), namespace)  # noqa: S102
    results = [namespace[k] for k in ("log_prob", "grads") if k in namespace]
    assert results, f"the {name} example computes neither log_prob nor grads"
