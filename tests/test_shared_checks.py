"""Every shared check of jflows.testing on every bijector case of the registry."""

import pytest

from jflows.testing import CHECKS
from tests.registry import CASES

# Whole stacks whose layers have cases of their own (glow_step / factor_out_multiscale,
# nsf_autoregressive_layer): each check compiles the full stack (up to 90 s on 2 cores), so
# they run with the slow tests.
SLOW_CASES = {"glow_two_levels", "nsf_autoregressive_stack"}

PAIRS = [
    pytest.param(case, check, id=f"{case.name}-{check}",
                 marks=[pytest.mark.slow] if case.name in SLOW_CASES else [])
    for case in CASES
    for check in CHECKS
    if case.checks is None or check in case.checks
]


@pytest.mark.parametrize(("case", "check"), PAIRS)
def test_shared_check(case, check):
    CHECKS[check](case)


def test_registry_names_are_unique():
    names = [case.name for case in CASES]
    assert len(names) == len(set(names)), sorted(n for n in names if names.count(n) > 1)
