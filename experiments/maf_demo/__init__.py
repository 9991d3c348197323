"""The main demo (``make demo``): MAF(5) vs a Gaussian on a committed MINIBOONE sample."""
