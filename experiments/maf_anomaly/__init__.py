"""Anomaly scoring with a MAF trained on one class (the seed's Speech Commands experiment)."""
