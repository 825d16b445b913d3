"""MOSES's published benchmark rows (Polykovskiy et al. 2020, "Molecular Sets (MOSES)", Table 2 and the
molecularsets/moses README): means over 3 runs of 30,000 samples each, against the whole test (Test) and scaffold
test (TestSF) splits. Data only, kept apart from genlab.metrics.moses so that the metric code and its caches do not
change when a row is added. Keys are the names genlab.metrics.moses.moses_metrics returns."""

from __future__ import annotations

# Columns in the order of MOSES's table.
MOSES_COLUMNS: tuple[str, ...] = (
    "valid", "unique@1000", "unique@10000", "FCD/Test", "FCD/TestSF", "SNN/Test", "SNN/TestSF", "Frag/Test",
    "Frag/TestSF", "Scaf/Test", "Scaf/TestSF", "IntDiv", "IntDiv2", "Filters", "Novelty",
)  # fmt: skip
# Whether larger is better, per column (FCD is a distance; everything else in the table is a score).
HIGHER_IS_BETTER: dict[str, bool] = {c: not c.startswith("FCD") for c in MOSES_COLUMNS}


def _row(*values: float | None) -> dict[str, float]:
    if len(values) != len(MOSES_COLUMNS):
        raise ValueError(f"a MOSES row has {len(MOSES_COLUMNS)} values, got {len(values)}")
    return {c: v for c, v in zip(MOSES_COLUMNS, values) if v is not None}


# The train row's Novelty is left out: the README prints 1.0 there, which a sample of the training set cannot score
# against the training set (it is 0 by definition).
PUBLISHED_ROWS: dict[str, dict[str, float]] = {
    "Train": _row(1.0, 1.0, 1.0, 0.008, 0.4755, 0.6419, 0.5859, 1.0, 0.9986, 0.9907, 0.0, 0.8567, 0.8508, 1.0, None),
    "HMM": _row(0.076, 0.623, 0.5671, 24.4661, 25.4312, 0.3876, 0.3795, 0.5754, 0.5681, 0.2065, 0.049, 0.8466, 0.8104, 0.9024, 0.9994),
    "NGram": _row(0.2376, 0.974, 0.9217, 5.5069, 6.2306, 0.5209, 0.4997, 0.9846, 0.9815, 0.5302, 0.0977, 0.8738, 0.8644, 0.9582, 0.9694),
    "Combinatorial": _row(
        1.0, 0.9983, 0.9909, 4.2375, 4.5113, 0.4514, 0.4388, 0.9912, 0.9904, 0.4445, 0.0865, 0.8732, 0.8666, 0.9557, 0.9878
    ),
    "CharRNN": _row(0.9748, 1.0, 0.9994, 0.0732, 0.5204, 0.6015, 0.5649, 0.9998, 0.9983, 0.9242, 0.1101, 0.8562, 0.8503, 0.9943, 0.8419),
    "AAE": _row(0.9368, 1.0, 0.9973, 0.5555, 1.0572, 0.6081, 0.5677, 0.991, 0.9905, 0.9022, 0.0789, 0.8557, 0.8499, 0.996, 0.7931),
    "VAE": _row(0.9767, 1.0, 0.9984, 0.099, 0.567, 0.6257, 0.5783, 0.9994, 0.9984, 0.9386, 0.0588, 0.8558, 0.8498, 0.997, 0.6949),
    "JTN-VAE": _row(1.0, 1.0, 0.9996, 0.3954, 0.9382, 0.5477, 0.5194, 0.9965, 0.9947, 0.8964, 0.1009, 0.8551, 0.8493, 0.976, 0.9143),
    "LatentGAN": _row(0.8966, 1.0, 0.9968, 0.2968, 0.8281, 0.5371, 0.5132, 0.9986, 0.9972, 0.8867, 0.1072, 0.8565, 0.8505, 0.9735, 0.9498),
}  # fmt: skip
