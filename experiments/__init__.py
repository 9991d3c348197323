"""Experiments reproducing published results; run each with ``python -m experiments.<name>``."""
