"""Side-by-side benchmarks; run each with ``python -m benchmarks.<name>``. See BENCHMARKS.md."""
