"""Autoregressive models: p(x) = prod_i p(x_i | x_<i), exact likelihood and exact (sequential) sampling."""
