"""The one registry of bijector cases that the shared checks run over.

Each area of the library contributes a module with a ``CASES`` list; add new modules to
``_MODULES``. ``tests/test_shared_checks.py`` runs every check of
:mod:`jflows.testing` on every case.
"""

from tests.registry import core, coupling, ffjord, glow, maf

_MODULES = (core, maf, ffjord, coupling, glow)

CASES = [case for module in _MODULES for case in module.CASES]
