"""MADE / MAF(5) / MAF(10) / MAF MoG(5) on MNIST in logit space (the MAF paper's Table 2)."""
