"""Evaluation metrics on features and samples: FID, KID, precision/recall, density/coverage, toy-data MMD and
mode coverage, and bits/dim under one likelihood convention. Light to import: scipy loads on first FID."""

from genlab.metrics.feature_nets import extract_features, reference_stats
from genlab.metrics.feature_nets import get_feature_net as features
from genlab.metrics.fid import fid, fid_from_stats, frechet_distance, gaussian_stats
from genlab.metrics.kid import kid
from genlab.metrics.likelihood import bits_per_dim, likelihood_report
from genlab.metrics.prdc import density_coverage, prdc, precision_recall
from genlab.metrics.toy import mmd, mode_coverage, nll_under

__all__ = [
    "bits_per_dim",
    "density_coverage",
    "extract_features",
    "features",
    "fid",
    "fid_from_stats",
    "frechet_distance",
    "gaussian_stats",
    "kid",
    "likelihood_report",
    "mmd",
    "mode_coverage",
    "nll_under",
    "prdc",
    "reference_stats",
    "precision_recall",
]
