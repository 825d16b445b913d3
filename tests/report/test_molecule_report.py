"""`genlab report` of molecule runs: the MOSES table (each evaluated run's numbers from its eval.json) above MOSES's
published rows, in the HTML page and the Markdown, with the run's RDKit grid of generated molecules; other modalities
get no such table."""

import json
import re

import pytest

from _threads import one_thread  # noqa: F401

pytest.importorskip("rdkit")
pytestmark = pytest.mark.usefixtures("one_thread")

from genlab import api  # noqa: E402
from genlab.metrics.moses_published import MOSES_COLUMNS, PUBLISHED_ROWS  # noqa: E402
from genlab.report.html import write_report  # noqa: E402

SMILES = ["CCO", "CCN", "CCCO", "c1ccccc1", "CC(=O)O", "CCOC", "CNC", "CCCN", "OCCO", "CC(C)O", "c1ccncc1", "CCCCO"]


@pytest.fixture(scope="module")
def molecule_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("mol")
    (root / "mols.smi").write_text("".join(s + "\n" for s in SMILES))
    cfg = {
        "data": {"name": "smiles_file", "root": str(root / "mols.smi")},
        "model": {"name": "charrnn", "hidden": 16, "n_layers": 1, "embed": 8},
        "train": {"max_steps": 3, "batch_size": 8, "warmup_steps": 1, "progress": False, "num_threads": 1, "n_samples": 8},
    }
    api.train(cfg, run_dir=root / "run", resume="never")
    return root / "run"


def cells(html_row: str) -> list[str]:
    return re.findall(r"<td[^>]*>([^<]*)</td>", html_row)


def test_the_moses_table_sits_beside_the_published_rows(molecule_run, tmp_path):
    numbers = {c: 0.5 + i / 100 for i, c in enumerate(MOSES_COLUMNS)}
    numbers["FCD/Test"] = 1.2345
    del numbers["Scaf/TestSF"]  # not measured: shown as a dash
    conventions = {"split": "test", "samples": {"n_samples": 30000, "sampler": {"temperature": 0.9}}}  # as genlab eval writes
    (molecule_run / "eval.json").write_text(json.dumps({**numbers, "conventions": conventions}))
    out = write_report([molecule_run], tmp_path / "report")
    page = out["html"].read_text(encoding="utf-8")
    assert "<h2>MOSES benchmark</h2>" in page
    section = page.split("<h2>MOSES benchmark</h2>")[1].split("<h2>Runs</h2>")[0]
    rows = re.findall(r"<tr>.*?</tr>", section)
    ours = cells(rows[1])
    assert ours[0] == "run (N = 30,000, temperature 0.9)"
    assert ours[1 + MOSES_COLUMNS.index("FCD/Test")] == "1.234"  # 4 significant digits
    assert ours[1 + MOSES_COLUMNS.index("valid")] == "0.5"
    assert ours[1 + MOSES_COLUMNS.index("Scaf/TestSF")] == "—"
    published = {c[0]: c for c in map(cells, rows[2:])}
    assert set(published) == {f"MOSES {m} (published)" for m in PUBLISHED_ROWS}
    charrnn = published["MOSES CharRNN (published)"]
    assert charrnn[1 + MOSES_COLUMNS.index("FCD/Test")] == "0.0732" and charrnn[1 + MOSES_COLUMNS.index("Novelty")] == "0.8419"
    assert published["MOSES Train (published)"][1 + MOSES_COLUMNS.index("Novelty")] == "—"
    header = re.findall(r"<th[^>]*>([^<]*)</th>", rows[0])
    assert header[1 + MOSES_COLUMNS.index("FCD/Test")] == "FCD/Test ↓" and header[1] == "valid ↑"
    # the run's picture is the RDKit grid the trainer drew from its final samples
    assert "samples (samples/final.png)" in page
    md = out["markdown"].read_text(encoding="utf-8")
    assert "## MOSES benchmark" in md and "| run (N = 30,000, temperature 0.9) | 0.5 |" in md and "| MOSES AAE (published) | 0.9368 |" in md


def test_no_table_without_moses_numbers_or_for_other_modalities(molecule_run, tmp_path):
    (molecule_run / "eval.json").unlink(missing_ok=True)
    page = write_report([molecule_run], tmp_path / "a")["html"].read_text(encoding="utf-8")
    assert "MOSES benchmark" not in page
    image_run = tmp_path / "img"
    cfg = {
        "data": {"name": "test_images"},
        "model": {"name": "test_gaussian"},
        "train": {"batch_size": 32, "max_steps": 2, "warmup_steps": 1, "progress": False},
        "eval": {"batch_size": 64, "n_batches": 1},
    }
    api.train(cfg, run_dir=image_run)
    (image_run / "eval.json").write_text(json.dumps({"valid": 1.0, "fid": 3.0}))  # a 'valid' key alone makes no molecule
    page = write_report([image_run], tmp_path / "b")["html"].read_text(encoding="utf-8")
    assert "MOSES benchmark" not in page
