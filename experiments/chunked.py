"""Evaluating a jitted function over many rows in fixed-size chunks (shared by experiments)."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import jax
import numpy as np


def map_in_chunks(fn: Callable, constants: Sequence, rows: Sequence, chunk_size: int = 4096
                  ) -> np.ndarray:
    """``fn(*constants, *row_chunks)`` over consecutive chunks of the row-aligned arrays
    ``rows``, concatenated as one NumPy array with a leading axis of ``len(rows[0])``.

    ``fn`` is jitted once per call; ``constants`` (params, state) are its arguments rather
    than closed-over values, so they are not baked into the compiled code. The last chunk is
    padded with copies of its last row to ``chunk_size``, so one compilation serves every
    chunk; the padded outputs are dropped.
    """
    if chunk_size < 1:
        raise ValueError(f"map_in_chunks: chunk_size must be >= 1, got {chunk_size}.")
    jitted = jax.jit(fn)
    total = len(rows[0])
    size = min(chunk_size, total)
    out = []
    for start in range(0, total, size):
        part = [np.asarray(r[start:start + size]) for r in rows]
        kept = len(part[0])
        if kept < size:
            part = [np.concatenate([p, np.repeat(p[-1:], size - kept, axis=0)]) for p in part]
        out.append(np.asarray(jitted(*constants, *part))[:kept])
    return np.concatenate(out)
