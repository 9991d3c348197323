"""Datasets for normalizing flows, loaded the way the papers did, and batch iterators.

    import jflows.data as jdata

    ds = jdata.load("miniboone", data_dir="~/data")   # train / validation / test + info
    it = jdata.BatchIterator(ds.train, batch_size=100, seed=0)
    for batch in it.from_step(0): ...

Modules: :mod:`~jflows.data.cache` (download, verify, cache), :mod:`~jflows.data.uci`
(POWER, GAS, HEPMASS, MINIBOONE, BSDS300), :mod:`~jflows.data.images` (MNIST, CIFAR-10,
logit transform and unit conversions), :mod:`~jflows.data.quickdraw`,
:mod:`~jflows.data.audio` (Speech Commands), :mod:`~jflows.data.toy2d`,
:mod:`~jflows.data.iterator`, :mod:`~jflows.data.registry`. The README's "Datasets"
section gives each dataset's source, license, preprocessing and offline placement.
"""

from jflows.data.audio import speech_commands
from jflows.data.cache import (
    CorruptDataError,
    DataError,
    MissingDataError,
    RemoteFile,
    data_home,
    fetch,
)
from jflows.data.dataset import Dataset
from jflows.data.images import (
    cifar10,
    dequantize,
    inverse_logit_transform,
    logit_nats_to_bits_per_dim,
    logit_transform,
    mnist,
    pixel_log_prob,
)
from jflows.data.iterator import BatchIterator, prefetch_to_device, split_for_devices
from jflows.data.quickdraw import quickdraw_bitmaps
from jflows.data.registry import available, load, register
from jflows.data.toy2d import sample as sample_toy
from jflows.data.uci import bsds300, gas, hepmass, miniboone, power

__all__ = [
    "BatchIterator", "CorruptDataError", "DataError", "Dataset", "MissingDataError",
    "RemoteFile", "available", "bsds300", "cifar10", "data_home",
    "dequantize", "fetch", "gas", "hepmass", "inverse_logit_transform", "load",
    "logit_nats_to_bits_per_dim", "logit_transform", "miniboone", "mnist",
    "pixel_log_prob", "power", "prefetch_to_device", "quickdraw_bitmaps", "register",
    "sample_toy", "speech_commands", "split_for_devices",
]
