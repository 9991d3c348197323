"""Marks the tests listed in ``tests/slow_tests.txt`` slow (deselected by default).

The default suite has to finish in about 10 minutes on 2 CPU cores (``make test``);
everything runs with ``make test-slow`` (``pytest -m slow``) as well. A test is either
decorated ``@pytest.mark.slow`` where it is written, or, when it is one case of a
parametrized family that stays in the default suite otherwise, listed by node id in
``slow_tests.txt`` (how that list was measured is at its top). A listed id that no longer
names a collected test of a collected file is an error (unless tests were asked
for by id), so the list cannot rot silently.
"""

from pathlib import Path

import pytest

SLOW_LIST = Path(__file__).with_name("slow_tests.txt")


def listed_slow_tests() -> set[str]:
    """The node ids of ``slow_tests.txt`` (relative to the repository root)."""
    lines = (line.split("#", 1)[0].strip() for line in SLOW_LIST.read_text().splitlines())
    return {line for line in lines if line}


@pytest.hookimpl(tryfirst=True)  # before -m / -k deselect anything
def pytest_collection_modifyitems(config, items):
    listed = listed_slow_tests()
    root = Path(config.rootpath)
    collected = set()
    for item in items:
        node_id = _repository_node_id(item, root)
        collected.add(node_id)
        if node_id in listed:
            item.add_marker(pytest.mark.slow)
    if any("::" in str(arg) for arg in config.args):  # single tests asked for by id
        return
    files = {node_id.split("::", 1)[0] for node_id in collected}
    stale = sorted(n for n in listed if n.split("::", 1)[0] in files and n not in collected)
    if stale:
        raise pytest.UsageError(
            f"tests/slow_tests.txt lists {len(stale)} test(s) that were not collected from "
            f"their file (renamed or removed?): {stale[:5]}. Update the list.")


def _repository_node_id(item, root: Path) -> str:
    path = Path(item.path).resolve()
    relative = path.relative_to(root.resolve()).as_posix()
    return relative + item.nodeid[len(item.nodeid.split("::", 1)[0]):]
