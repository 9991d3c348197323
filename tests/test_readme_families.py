"""The README's coupling / spline and Glow examples run as written (slow: each builds and
compiles several flows)."""

import pathlib
import re

import numpy as np
import pytest

README = pathlib.Path(__file__).resolve().parents[1] / "README.md"


def blocks(start: str, end: str) -> list[str]:
    text = README.read_text()
    section = text[text.index(start):text.index(end)]
    return re.findall(r"```python\n(.*?)```", section, re.S)


@pytest.mark.slow
def test_coupling_examples_run():
    flows, pieces = blocks("## Coupling flows, neural splines and Glow", "### Glow:")
    namespace = {}
    exec(compile(flows, "README coupling", "exec"), namespace)
    assert namespace["log_prob"].shape == (256,) and namespace["samples"].shape == (10, 6)
    exec(compile(pieces, "README coupling pieces", "exec"), namespace)
    assert namespace["spline"].params_per_dim == 23


@pytest.mark.slow
def test_glow_example_runs(capsys):
    (example,) = blocks("### Glow:", "## FFJORD")
    namespace = {}
    exec(compile(example, "README glow", "exec"), namespace)
    assert namespace["samples"].shape == (4, 8, 8, 1)
    assert np.isfinite(float(capsys.readouterr().out))
