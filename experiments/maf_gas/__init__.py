"""MAF(10) on GAS: the seed experiment and the MAF paper's GAS row."""
