"""Normalizing flows: exact likelihoods by the change of variables (RealNVP, Glow, MAF, neural spline flows)."""
