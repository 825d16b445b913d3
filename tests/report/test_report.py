"""`genlab report`: the leaderboard in Markdown and self-contained HTML, per-class tables, the CLI
sub-command, and the page rendering its images in headless Chromium."""

import argparse
import json
import re
import shutil
import subprocess

import numpy as np
import pytest

import genlab
from genlab.errors import CheckpointError
from genlab.report.html import add_parser, write_report

CONVENTIONS = {"split": "test", "n_examples": 128, "weights": "model", "features": "test-net"}
EVAL_PLAIN = {"family": "test", "model": "test_gaussian", "step": 10, "likelihood": "exact", "nll": 44.3, "bits_per_dim": 3.9876}
EVAL_PLAIN |= {"fid": 12.5, "kid": 0.0123, "kid_std": 0.0011, "precision": 0.61, "recall": 0.52, "density": 0.9, "coverage": 0.7}
EVAL_PLAIN |= {"seconds_per_sample": 0.00042, "conventions": CONVENTIONS}
PER_CLASS = [{"label": i, "name": n, "accuracy": 0.8 + i / 20, "fid": 20.0 + i} for i, n in enumerate("abcd")]
EVAL_COND = dict(EVAL_PLAIN, fid=8.25, accuracy=0.9, per_class=PER_CLASS)
EVAL_BOUND = {"likelihood": "bound", "bound": "IWAE-1000", "nll_bound": 50.0, "bits_per_dim": 4.5, "conventions": CONVENTIONS}


def tiny_cfg(conditional: bool) -> dict:
    return {
        "data": {"name": "test_images"},
        "model": {"name": "test_gaussian", "conditional": conditional},
        "train": {"batch_size": 32, "max_steps": 10, "lr": 0.05, "warmup_steps": 2, "log_every": 5, "progress": False},
        "eval": {"batch_size": 64, "n_batches": 1},
    }


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Four runs: conditional (best FID), plain (worse FID), a bound-only one (bits/dim), one never evaluated."""
    root = tmp_path_factory.mktemp("runs")
    genlab.train(tiny_cfg(False), run_dir=root / "plain")
    genlab.train(tiny_cfg(True), run_dir=root / "cond")
    shutil.copytree(root / "plain", root / "bound")
    shutil.copytree(root / "plain", root / "fresh")
    (root / "fresh" / "loss.png").unlink()  # the report plots the curves itself
    for name, ev in [("plain", EVAL_PLAIN), ("cond", EVAL_COND), ("bound", EVAL_BOUND)]:
        (root / name / "eval.json").write_text(json.dumps(ev))
    return root


@pytest.fixture(scope="module")
def report(runs):
    return write_report([runs / n for n in ["fresh", "plain", "bound", "cond"]], runs / "report", title="tiny runs")


def table_rows(md: str) -> list[list[str]]:
    """The cells of the Markdown leaderboard (the first table)."""
    lines = md.split("\n\n")[1].strip().splitlines()
    return [[c.strip() for c in line.strip("|").split("|")] for line in lines]


def test_markdown_leaderboard_sorted_by_fid_then_bits_per_dim(report, runs):
    md = report["markdown"].read_text(encoding="utf-8")
    header, _, *rows = table_rows(md)
    assert header[:7] == ["run", "family", "method", "data", "params", "steps", "train time"]
    shared = ["FID ↓", "KID ↓", "precision ↑", "recall ↑", "density ↑", "coverage ↑", "bits/dim ↓", "s/sample ↓"]
    assert header[7:] == [*shared, "domain metrics"]
    assert [r[0] for r in rows] == ["cond", "plain", "bound", "fresh"]
    cond, plain, bound, fresh = (dict(zip(header, r)) for r in rows)
    assert cond["family"] == "test" and cond["method"] == "test_gaussian" and cond["data"] == "test_images"
    assert cond["params"] == str(4 * 64 + 64) and plain["params"] == "128" and plain["steps"] == "10"
    assert plain["train time"].endswith(" s") and fresh["train time"] != "—"
    assert plain["FID ↓"] == "12.50" and plain["KID ↓"] == "0.0123 ± 0.0011" and plain["precision ↑"] == "0.610"
    assert plain["bits/dim ↓"] == "3.988" and plain["s/sample ↓"] == "0.00042"
    assert bound["bits/dim ↓"] == "≤ 4.500" and bound["FID ↓"] == "—"
    assert all(v == "—" for k, v in fresh.items() if k not in header[:7])


def test_markdown_per_class_images_and_conventions(report, runs):
    md = report["markdown"].read_text(encoding="utf-8")
    per_class = md.split("Per class:\n\n")[1].split("\n\n")[0].splitlines()
    assert per_class[0] == "| label | name | accuracy | fid |"
    assert per_class[2:] == [f"| {i} | {n} | {0.8 + i / 20:.3f} | {20 + i:.2f} |" for i, n in enumerate("abcd")]
    assert md.count("Per class:") == 1  # only the conditional run has per-class numbers
    images = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", md)
    assert "report_files/cond_samples.png" in images and "report_files/fresh_loss.png" in images
    assert all((runs / "report" / p).is_file() for p in images)
    assert len(images) == 8  # samples and loss curves for each of the four runs
    assert "Conventions: split: test; n_examples: 128; weights: model; features: test-net; likelihood: bound; bound: IWAE-1000" in md
    assert "Conventions: not evaluated" in md


def test_html_is_self_contained(report):
    page = report["html"].read_text(encoding="utf-8")
    srcs = re.findall(r'<img[^>]*\ssrc="([^"]*)"', page)
    assert len(srcs) == 8 and all(s.startswith("data:image/png;base64,") for s in srcs)
    text = re.sub(r"data:image/png;base64,[A-Za-z0-9+/=]+", "", page)
    assert not re.search(r"(https?:|file:|url\(|//[a-z])", text), "an external resource"
    assert all(h.startswith("#run-") for h in re.findall(r'href="([^"]*)"', text))
    assert "<script" not in page and "<link" not in page and "@import" not in page
    assert page.index('id="run-cond"') < page.index('id="run-plain"') < page.index('id="run-bound"') < page.index('id="run-fresh"')
    assert "<th>label</th>" in page and "IWAE-1000" in page
    assert '<td class="text">accuracy</td><td>0.900</td>' in page and '<td class="text">nll_bound</td><td>50</td>' in page


def test_not_a_run_directory(tmp_path, runs):
    (tmp_path / "notes").mkdir()
    with pytest.raises(CheckpointError, match="notes is not a genlab run directory"):
        write_report([runs / "plain", tmp_path / "notes"], tmp_path / "out")
    with pytest.raises(CheckpointError, match="missing does not exist"):
        write_report([tmp_path / "missing"], tmp_path / "out")
    assert not (tmp_path / "out").exists()  # refused before writing anything


def test_cli_subcommand(runs, tmp_path, capsys):
    parser = argparse.ArgumentParser(prog="genlab")
    add_parser(parser.add_subparsers(dest="command"))
    with pytest.raises(SystemExit) as e:
        parser.parse_args(["report", "--help"])
    assert e.value.code == 0 and "usage: genlab report" in capsys.readouterr().out
    args = parser.parse_args(["report", str(runs / "plain"), "--out", str(tmp_path / "rep")])
    assert args.fn(args) == 0
    assert str(tmp_path / "rep" / "report.html") in capsys.readouterr().out
    assert parser.parse_args(["report", "r"]).out == "reports"


BROWSER = next((shutil.which(b) for b in ("chromium", "chromium-browser", "google-chrome") if shutil.which(b)), None)
# Written into a test-only copy of the page (the report itself carries no scripts): each image's decoded width.
PROBE = (
    '<script>addEventListener("load", () => '
    'document.body.dataset.imgs = Array.from(document.images, i => i.naturalWidth).join(","))</script>'
)


def chromium(tmp_path, *args: str) -> str:
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking"]
    flags += ["--disable-component-update", "--disable-sync", "--hide-scrollbars", f"--user-data-dir={tmp_path / 'profile'}"]
    return subprocess.run([BROWSER, *flags, *args], capture_output=True, text=True, timeout=120, check=True).stdout


@pytest.mark.skipif(BROWSER is None, reason="chromium is not installed (bash scripts/setup_browser.sh installs it)")
def test_renders_images_in_headless_chromium(report, tmp_path):
    from PIL import Image

    probe = tmp_path / "probe.html"
    probe.write_text(report["html"].read_text(encoding="utf-8").replace("</body>", PROBE + "</body>"), encoding="utf-8")
    dom = chromium(tmp_path, "--dump-dom", probe.as_uri())
    widths = re.search(r'data-imgs="([^"]*)"', dom)
    assert widths, "the page did not load"
    assert len(widths[1].split(",")) == 8 and all(int(w) > 0 for w in widths[1].split(","))  # every image decoded
    shot = tmp_path / "shot.png"
    chromium(tmp_path, f"--screenshot={shot}", "--window-size=1200,1600", report["html"].as_uri())
    pixels = np.asarray(Image.open(shot).convert("L"), dtype=float)
    assert pixels.shape == (1600, 1200) and pixels.std() > 5  # not a blank page
