"""The MOSES metrics against hand-computed cases, brute-force formulas, the fcd package's own FCD and the statistics
shipped in the molsets wheel (test_stats.npz)."""

from collections import Counter

import numpy as np
import pytest

from _threads import one_thread  # noqa: F401

pytest.importorskip("rdkit")
pytest.importorskip("fcd")

from genlab.data.molecules import molsets_folder, smiles_of, subsample  # noqa: E402
from genlab.errors import DataError  # noqa: E402
from genlab.metrics import moses as M  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_thread")


DRUGS = [
    "CC(=O)Oc1ccccc1C(=O)O", "CN1CCC[C@H]1c1cccnc1", "CC(C)Cc1ccc(C(C)C(=O)O)cc1", "COc1ccc2[nH]ccc2c1", "O=C(N)c1ccncc1",
    "CN1C(=O)N(C)c2nc[nH]c2C1=O", "Nc1ncnc2[nH]cnc12", "CC(=O)Nc1ccc(O)cc1", "O=C(O)c1ccccc1O", "c1ccc2ccccc2c1",
    "CNC(=O)c1ccccc1", "CCOC(=O)c1ccc(N)cc1", "Clc1ccc(Cl)cc1", "CCN(CC)CCNC(=O)c1ccc(N)cc1", "O=C1CCCN1",
    "CC1(C)SC2C(NC(=O)Cc3ccccc3)C(=O)N2C1C(=O)O", "COc1cc(C=O)ccc1O", "OC(=O)CCc1ccccc1", "c1ccc(-c2ccccc2)cc1", "CCCCN",
]  # fmt: skip


def test_validity_uniqueness_and_novelty_of_a_hand_made_list():
    gen = ["CCO", "OCC", "c1ccccc1", "C1CC", "", "c1cccc1", "CCN", "CC(=O"]  # 4 valid: ethanol twice, benzene, ethylamine
    assert M.fraction_valid(gen) == pytest.approx(4 / 8)
    canon = [c for c in map(M.canonical, gen) if c is not None]
    assert canon == ["CCO", "CCO", "c1ccccc1", "CCN"]
    assert M.fraction_unique(canon) == pytest.approx(3 / 4) and M.fraction_unique(canon, 2) == pytest.approx(1 / 2)
    assert M.novelty(canon, {"CCO", "CCC"}) == pytest.approx(2 / 3)  # benzene and ethylamine are new
    with pytest.raises(DataError, match="empty"):
        M.fraction_valid([])


def test_tanimoto_snn_and_internal_diversity_by_hand():
    a, b, c, empty = [1, 1, 0, 0], [1, 0, 1, 0], [0, 0, 1, 1], [0, 0, 0, 0]
    gen = np.array([a, empty], dtype=np.uint8)
    ref = np.array([b, c, empty], dtype=np.uint8)
    # a vs b: 1 shared of 3 set bits; a vs c: 0; two empty fingerprints count as identical.
    assert M.tanimoto_aggregate(ref, gen, "max").tolist() == pytest.approx([1 / 3, 1.0])
    assert M.snn(gen, ref) == pytest.approx((1 / 3 + 1) / 2)
    fps = np.array([a, b, c], dtype=np.uint8)
    T = np.array([[1, 1 / 3, 0], [1 / 3, 1, 1 / 3], [0, 1 / 3, 1]])
    for p in (1, 2):
        assert M.internal_diversity(fps, p) == pytest.approx(1 - np.mean(np.mean(T**p, 1) ** (1 / p)))
    assert M.internal_diversity(fps, (1, 2)).tolist() == pytest.approx([M.internal_diversity(fps, 1), M.internal_diversity(fps, 2)])


def test_tanimoto_in_chunks_matches_brute_force():
    rng = np.random.default_rng(0)
    ref, gen = ((rng.random((n, 64)) < 0.2).astype(np.uint8) for n in (37, 11))
    brute = np.array([[(g & r).sum() / max((g | r).sum(), 1) if (g | r).any() else 1.0 for r in ref] for g in gen])
    assert M.tanimoto_aggregate(ref, gen, "max", chunk=5) == pytest.approx(brute.max(1))
    assert M.tanimoto_aggregate(ref, gen, "mean", p=2, chunk=5) == pytest.approx(np.sqrt((brute**2).mean(1)))


def test_cosine_similarity_of_counts():
    assert M.cosine_similarity(Counter(a=1, b=1), Counter(a=2, b=2)) == pytest.approx(1.0)
    assert M.cosine_similarity(Counter(a=1), Counter(b=3)) == 0.0
    assert M.cosine_similarity(Counter(a=3, b=4), Counter(a=1)) == pytest.approx(3 / 5)
    assert np.isnan(M.cosine_similarity(Counter(), Counter(a=1)))


def test_fragments_scaffolds_and_filters():
    mols = [M.get_mol(s) for s in ("c1ccccc1CC1CCCC1", "c1ccccc1", "CCO")]
    assert M.scaffold(mols[0]) == "c1ccc(CC2CCCC2)cc1" and M.scaffold(mols[1]) is None  # one ring is not a scaffold
    # Ethyl benzoate breaks at its three BRICS bonds (ester O-C(=O), O-ethyl, C(=O)-ring), labelled by BRICS bond type.
    assert M.fragments([M.get_mol("CCOC(=O)c1ccccc1")]) == Counter({"[4*]CC": 1, "[3*]O[3*]": 1, "[1*]C([6*])=O": 1, "[16*]c1ccccc1": 1})
    passes = {s: M.passes_filters(M.get_mol(s)) for s in ("CC(=O)Nc1ccc(O)cc1", "C[N+](C)(C)C", "CC[Si](C)C", "C1CCCCCCC1", "CCC=O")}
    assert passes == {"CC(=O)Nc1ccc(O)cc1": True, "C[N+](C)(C)C": False, "CC[Si](C)C": False, "C1CCCCCCC1": False, "CCC=O": False}
    rhodanine = "S=C1SC(=Cc2ccccc2)C(=O)N1"  # PAINS ene_rhod
    assert not M.passes_filters(M.get_mol(rhodanine))


def test_identical_sets_score_perfectly():
    ref = M.Reference.from_smiles(DRUGS)
    out = M.moses_metrics(DRUGS, {"Test": ref}, train={M.canonical(s) for s in DRUGS}, k=(10,))
    assert out["valid"] == 1 and out["unique@10"] == 1 and out["Novelty"] == 0
    assert out["SNN/Test"] == pytest.approx(1.0) and out["Frag/Test"] == pytest.approx(1.0) and out["Scaf/Test"] == pytest.approx(1.0)
    assert abs(out["FCD/Test"]) < 1e-3
    assert all(out[p] == pytest.approx(0.0, abs=1e-9) for p in M.PROPERTIES)
    assert 0 < out["IntDiv2"] < out["IntDiv"] < 1


@pytest.mark.filterwarnings("ignore:only . valid molecules", "ignore:0 valid molecules")
def test_a_set_of_one_molecule_and_duplicates():
    one = M.moses_metrics(["CCO", "C1CC", "CCO"], {}, train={"CCO"}, k=(10,))
    assert one["valid"] == pytest.approx(2 / 3) and one["unique@10"] == pytest.approx(1 / 2) and one["Novelty"] == 0
    assert one["IntDiv"] == pytest.approx(0.0)  # two copies of one molecule
    nothing = M.moses_metrics(["C1CC", "xyz"], {}, train=set(), k=(10,))
    assert nothing["valid"] == 0 and nothing["unique@10"] is None and nothing["IntDiv"] is None


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # fcd 1.2.2 passes scipy's deprecated sqrtm(disp=)
def test_fcd_agrees_with_the_fcd_package():
    import fcd

    a, b = DRUGS[:12], DRUGS[8:] + ["CCO", "CCN"]
    assert M.fcd_distance(a, b) == pytest.approx(fcd.get_fcd(a, b, device="cpu"), rel=1e-4)
    with pytest.raises(DataError, match="at least 2"):
        M.fcd_stats(["CCO"])


@pytest.fixture(scope="module")
def moses_test():
    folder = molsets_folder()
    if folder is None:
        pytest.skip("molsets is not installed (scripts/get_molecules.sh)")
    return smiles_of(folder / "test.csv.gz"), M.Reference.from_moses_stats(folder / "test_stats.npz")


def test_our_features_equal_the_wheels_test_statistics(moses_test):
    test, ref = moses_test
    mols = [M.get_mol(s) for s in test[:50]]
    assert ref.n == len(test) == 176074
    assert np.array_equal(M.fingerprints(mols), ref.fps[:50])
    props = M.properties(mols)
    for p in M.PROPERTIES:
        assert props[p] == pytest.approx(ref.props[p][:50], abs=1e-9), p
    frag, scaf = M.fragments(mols), M.scaffolds(mols)
    assert all(ref.frag[k] >= v for k, v in frag.items()) and all(ref.scaf[k] >= v for k, v in scaf.items())
    assert all(map(M.passes_filters, mols))  # the MOSES data were curated with these filters


def test_fcd_of_a_random_test_subset_against_the_whole_test_split(moses_test):
    test, ref = moses_test
    fcd_random = M.frechet_distance(*M.fcd_stats(subsample(test, 300, 0)), ref.mu, ref.sigma)
    # Measured: random 300-subsets score 4.67 / 4.70 / 4.85 (seeds 0-2; the bias of 300 samples) against the wheel's
    # statistics of the whole split; the file's first 300 molecules score 10.1 (the file is ordered).
    assert 4.0 < fcd_random < 5.5
