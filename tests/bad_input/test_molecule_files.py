"""Property-based fuzzing (hypothesis) of the SMILES loader (issue 19): any text, any lines, any bytes given as a
SMILES/CSV file either give a molecule dataset or a DataError, never a raw traceback; and the bad molecule inputs
of issue 15 item 7 (unparseable or unwritable training SMILES, a tiny sample, a bad property request) each say what
was wrong."""

import gzip
import os
import tempfile
import warnings
from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

pytest.importorskip("rdkit")

from genlab.config import DataConfig  # noqa: E402
from genlab.data import load_dataset  # noqa: E402
from genlab.data.molecules import read_smiles  # noqa: E402
from genlab.errors import ConfigError, DataError  # noqa: E402
from genlab.metrics import moses  # noqa: E402

FUZZ = settings(max_examples=40, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
SMILES_LIKE = st.text(alphabet="CNOScnos()[]=#@+-123456789%Hl/\\. ,\"'\t", max_size=25)
VALID = [f"{'C' * k}{end}" for k in range(1, 9) for end in ("", "O", "N", "Cl", "C(=O)O", "c1ccccc1")]
MOSTLY_VALID = st.lists(st.one_of(st.sampled_from(VALID), SMILES_LIKE), min_size=20, max_size=60)  # builds both splits often
LINES = st.lists(st.one_of(SMILES_LIKE, st.text(max_size=20), st.sampled_from(["smiles", "SMILES,id", "CCO", "c1ccccc1", ""])), max_size=40)


def load_or_data_error(name: str, content: bytes, dataset: str = "smiles_file") -> None:
    """Read `content` as the file `name` and build both splits of a SMILES-file dataset: a dataset whose examples
    are token rows over its vocabulary (with finite properties for the *_props datasets), or a DataError."""
    with tempfile.TemporaryDirectory() as d, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        os.environ["GENLAB_CACHE"] = str(Path(d) / "cache")
        path = Path(d) / name
        path.write_bytes(content)
        try:
            smiles = read_smiles(path)
            assert all(isinstance(s, str) and s for s in smiles)
            for split in ("train", "test"):
                ds, _ = load_dataset(DataConfig(name=dataset, root=str(path)), split)
                assert len(ds) > 0 and int(ds.x.max()) < len(ds.spec.vocab) and ds.x.shape[1] == ds.spec.shape[0]
                assert ds.y is None or bool(ds.y[:, [0, 1, 3]].isfinite().all())
        except DataError:
            pass


@pytest.fixture(autouse=True)
def _restore_cache_env():
    before = os.environ.get("GENLAB_CACHE")
    yield
    if before is None:
        os.environ.pop("GENLAB_CACHE", None)
    else:
        os.environ["GENLAB_CACHE"] = before


@FUZZ
@given(
    st.one_of(LINES, MOSTLY_VALID),
    st.sampled_from(["mols.smi", "mols.csv", "mols.txt"]),
    st.sampled_from(["smiles_file", "smiles_file_selfies", "smiles_file_props"]),
)
@example(["smiles,id", "CCO,1", 'C"C,2', "C\x00C,3"], "mols.csv", "smiles_file")
@example(["C%(123)CC%(123)"] * 20 + ["CCO"] * 5, "mols.smi", "smiles_file")
@example(["CC", "CCC"], "mols.smi", "smiles_file_props")
def test_any_lines_give_a_dataset_or_a_data_error(lines, name, dataset):
    load_or_data_error(name, "\n".join(lines).encode(), dataset)


@FUZZ
@given(st.binary(max_size=300), st.sampled_from(["mols.smi", "mols.csv.gz", "mols.csv"]))
@example(b"\xff\xfe\x00", "mols.smi")
@example(b"not gzip", "mols.csv.gz")
@example(gzip.compress(b"smiles\nCCO\n")[:-3], "mols.csv.gz")
def test_any_bytes_give_a_dataset_or_a_data_error(content, name):
    load_or_data_error(name, content)


def test_unwritable_and_unparseable_training_smiles_are_counted_and_skipped(tmp_path, monkeypatch):
    monkeypatch.setenv("GENLAB_CACHE", str(tmp_path / "cache"))
    good = [f"{'C' * k}{end}" for k in range(1, 11) for end in ("", "O", "N")]
    (tmp_path / "m.smi").write_text("\n".join([*good, "C1CC", "XYZ", "C%(123)CC%(123)"]) + "\n")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ds, _ = load_dataset(DataConfig(name="smiles_file", root=str(tmp_path / "m.smi")), "train")
    said = " | ".join(str(w.message) for w in caught)
    assert "skipped 2 training SMILES that RDKit cannot parse" in said, said
    assert "cannot be written as smiles" in said and len(ds) == sum(1 for s in good if s) - sum(1 for s in good if _held_out(s))


def _held_out(s: str) -> bool:
    import zlib

    return zlib.crc32(s.encode()) % 10 == 0


@pytest.mark.filterwarnings("ignore:only 1 valid molecules")
def test_empty_and_tiny_samples_for_the_metrics():
    with pytest.raises(DataError, match="empty sample"):
        moses.moses_metrics([], {})
    with pytest.raises(DataError, match="at least 2 valid molecules"):
        moses.fcd_stats(["CCO"])
    with pytest.warns(UserWarning, match="the set metrics need at least 2"):
        out = moses.moses_metrics(["CCO", "C1CC"], {})
    assert out["valid"] == 0.5 and out["IntDiv"] is None


def test_a_property_request_that_is_not_a_number():
    from genlab.data.molecule_properties import parse_targets

    with pytest.raises(ConfigError, match="cannot read 'qed=high'"):
        parse_targets("qed=high", ("qed",), 3)
