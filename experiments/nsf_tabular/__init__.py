"""NSF-autoregressive, NSF-coupling and RealNVP next to MAF on the committed MINIBOONE
sample and on 2-D toys (issue 14)."""
