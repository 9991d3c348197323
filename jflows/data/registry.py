"""Datasets by name, so experiments can say ``load("gas")`` or ``load("moons")``.

``load(name, **kwargs)`` calls the dataset's loader with ``kwargs`` (see each loader for
its arguments, e.g. ``data_dir``, ``path``, ``source``, ``classes``) and returns a
:class:`jflows.data.Dataset`. ``available()`` lists the names; ``register`` adds one.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

from jflows.data import audio, images, quickdraw, toy2d, uci
from jflows.data.dataset import Dataset

_LOADERS: dict[str, Callable[..., Dataset]] = {
    "power": uci.power,
    "gas": uci.gas,
    "hepmass": uci.hepmass,
    "miniboone": uci.miniboone,
    "bsds300": uci.bsds300,
    "mnist": images.mnist,
    "cifar10": images.cifar10,
    "quickdraw": quickdraw.quickdraw_bitmaps,
    "speech_commands": audio.speech_commands,
    **{name: functools.partial(toy2d.toy_dataset, name) for name in toy2d.TOY_DATASETS},
}


def available() -> list[str]:
    """Names :func:`load` accepts, sorted."""
    return sorted(_LOADERS)


def register(name: str, loader: Callable[..., Dataset], *, overwrite: bool = False) -> None:
    """Make ``load(name, **kwargs)`` call ``loader(**kwargs)`` (names are case-insensitive)."""
    key = name.lower()
    if key in _LOADERS and not overwrite:
        raise ValueError(f"dataset {name!r} is already registered; pass overwrite=True.")
    _LOADERS[key] = loader


def load(name: str, **kwargs) -> Dataset:
    """The dataset ``name`` (one of :func:`available`), loaded with ``kwargs``."""
    key = name.lower()
    if key not in _LOADERS:
        raise KeyError(f"unknown dataset {name!r}; available: {', '.join(available())}.")
    return _LOADERS[key](**kwargs)
