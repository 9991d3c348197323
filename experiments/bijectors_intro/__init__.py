"""The bijectors introduction: densities through bijectors, and a trained 2-D flow."""
