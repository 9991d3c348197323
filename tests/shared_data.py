"""Where the tests find the project's shared real data: ``$JFLOWS_SHARED_DATA``, else
``../shared/data`` beside the repository root (as CI lays it out)."""

import os
from pathlib import Path

SHARED_DATA = Path(os.environ.get(
    "JFLOWS_SHARED_DATA", Path(__file__).resolve().parents[1].parent / "shared" / "data"))
