"""Tests of the benchmark engine (mfif.bench) and ``mfif bench``."""
from __future__ import annotations

import csv
import json
import sys
import types
from pathlib import Path

import numpy as np
import pytest

from mfif import bench as B
from mfif import metrics as M
from mfif.cli import main
from mfif.errors import UsageError
from mfif.io import from_float, write_image
from mfif.methods import METHODS, Method

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))
import paperbench as P  # noqa: E402  (the project's benchmark, built on mfif.bench)


def _write_case(folder: Path, seed: int, size: int = 128, names=("A", "B"), with_gt: bool = True) -> None:
    from skimage import data

    from mfif.synth import make_case

    photo = data.camera().astype(np.float32) / 255.0
    case = make_case(photo, rng=np.random.default_rng(seed), size=size, radius=(2.0, 4.0))
    for name, src in zip(names, case.sources):
        write_image(folder / f"{name}.png", from_float(src))
    if with_gt:
        write_image(folder / "gt.png", from_float(case.gt))
        write_image(folder / "mask.png", case.mask.astype(np.uint8))


@pytest.fixture(scope="module")
def tiny_set(tmp_path_factory) -> Path:
    """Two synthetic 160x160 gray cases with ground truth, as `mfif synth` lays them out."""
    root = tmp_path_factory.mktemp("tiny")
    for i in range(2):
        _write_case(root / f"case_{i:04d}", seed=10 + i, size=160)
    return root


@pytest.fixture
def broken_methods(monkeypatch):
    """Two methods that fail: one on import (at warm-up), one at run time on images over 128 px."""
    mod = types.ModuleType("_mfif_test_broken")

    def fuse_late(sources, **_):
        if sources[0].shape[0] > 128:
            raise RuntimeError("too big for me")
        from mfif.methods.average import fuse_average

        return fuse_average(sources)

    mod.fuse_late = fuse_late
    monkeypatch.setitem(sys.modules, "_mfif_test_broken", mod)
    monkeypatch.setitem(METHODS, "broken", Method("broken", "_mfif_test_broken:missing", "fails to load"))
    monkeypatch.setitem(METHODS, "late", Method("late", "_mfif_test_broken:fuse_late", "fails on big images"))
    return ["broken", "late"]


def _read_csv(path: Path) -> list[dict]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


# --------------------------------------------------------------------------- data sets


def test_scan_layouts(tmp_path, tiny_set):
    ds = B.scan_folder(tiny_set)
    assert [c.name for c in ds.cases] == ["case_0000", "case_0001"] and ds.has_gt
    c = ds.cases[0]
    assert [Path(p).name for p in c.sources] == ["A.png", "B.png"]
    assert Path(c.gt).name == "gt.png" and Path(c.mask).name == "mask.png"

    # flat pairs NAME_1 / NAME_2 (the classic layout), sources without ground truth
    flat = tmp_path / "flat"
    for i, name in enumerate(["x", "y"]):
        d = tmp_path / f"tmp{i}"
        _write_case(d, seed=i, size=48, names=(f"{name}_1", f"{name}_2"), with_gt=False)
        for p in d.iterdir():
            write_image(flat / p.name, np.asarray(__import__("mfif").io.read_image(p)))
    ds = B.scan_folder(flat)
    assert [c.name for c in ds.cases] == ["x", "y"] and not ds.has_gt
    assert [Path(p).name for p in ds.cases[1].sources] == ["y_1.png", "y_2.png"]

    # MFFW layout N/image1.tif, image2.tif ... and one case folder given directly
    mf = tmp_path / "mffw"
    _write_case(mf / "1", seed=3, size=48, names=("image1", "image2"), with_gt=False)
    assert [c.name for c in B.scan_folder(mf).cases] == ["1"]
    one = B.scan_folder(tiny_set / "case_0001")
    assert len(one.cases) == 1 and one.cases[0].gt

    # an mfif synth output: its test split
    synth = tmp_path / "synth"
    (synth / "test").mkdir(parents=True)
    (synth / "manifest.json").write_text("{}")
    _write_case(synth / "test" / "case_0000", seed=4, size=48)
    assert len(B.scan_folder(synth).cases) == 1
    with pytest.raises(UsageError, match="split"):
        B.scan_folder(synth, split="val")
    (tmp_path / "empty").mkdir()
    with pytest.raises(UsageError, match="no case"):
        B.scan_folder(tmp_path / "empty")
    with pytest.raises(UsageError):
        B.scan_folder(tmp_path / "missing")


def test_resolve_limits_names_and_missing_data(tmp_path, tiny_set):
    ds = B.resolve_datasets([f"{tiny_set}:1", str(tiny_set)])
    assert [len(d.cases) for d in ds] == [1, 2]
    assert ds[0].name != ds[1].name  # same folder twice gets distinct names
    assert ds[0].total == 2
    with pytest.raises(UsageError, match="no such data set folder"):
        B.resolve_datasets(["nope"])
    named = P.named_datasets(tmp_path, tmp_path)
    with pytest.raises(UsageError, match="test_images"):
        B.resolve_datasets(["paper-gray"], named=named)
    msgs = []
    assert B.resolve_datasets(["classic"], named=named, skip_missing=True, warn=msgs.append) == []
    assert msgs and "real_pairs/classic" in msgs[0]


def test_measures_against_ground_truth(rng):
    import cv2

    gt = cv2.GaussianBlur(rng.random((64, 64), dtype=np.float32), (0, 0), 0.8)
    assert M.sharpness_ratio(gt, gt) == pytest.approx(100.0)
    assert M.sharpness_ratio(cv2.GaussianBlur(gt, (0, 0), 2.0), gt) < 50
    assert M.artifact_rate(gt, gt) == 0.0
    off = gt.copy()
    off[:16] = np.clip(off[:16] + 0.2, 0, 1)
    assert M.artifact_rate(off, gt) == pytest.approx(25.0, abs=3)


def test_ordering_check_verdicts():
    rows = []
    for i in range(20):
        for m, v in (("sff", 0.95), ("pcanet", 0.90), ("dwt", 0.93)):
            rows.append({"dataset": "d", "case": str(i), "method": m, "status": "ok", "ssim": v + 0.001 * (i % 3)})
    res = {(c["better"], c["worse"]): c for c in P.ordering_check(rows, "d")}
    assert res[("sff", "pcanet")]["verdict"] == "holds"
    assert res[("pcanet", "dwt")]["verdict"] == "reversed"
    assert res[("sff", "dwt")]["wins"] == 1.0
    res = P.ordering_check([r for r in rows if r["method"] != "sff"], "d")
    assert res[0]["verdict"].startswith("not measured")


@pytest.mark.data
def test_paper_sets_on_the_fly_match_the_built_set(shared_data):
    built = REPO / "data-synth" / "paper-gray"
    if not (built / "manifest.json").is_file():
        pytest.skip("data-synth/paper-gray not built (make synth-paper)")
    fly = P.builtin_dataset("paper-gray", data_root=shared_data, synth_root=None)
    assert len(fly.cases) == 904 and fly.cases[0].synth is not None
    ref = B.scan_folder(built)
    a, b = B.load_case(fly.cases[7]), B.load_case(ref.cases[7])
    for x, y in zip(a.sources + [a.gt, a.mask], b.sources + [b.gt, b.mask]):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


# --------------------------------------------------------------------------- runs


@pytest.mark.slow
def test_bench_cli_end_to_end(tmp_path, tiny_set, broken_methods, capsys):
    out = tmp_path / "out"
    rc = main(["bench", str(tiny_set), "-m", "average,focus-map,pcanet,broken,late", "-o", str(out), "-q",
               "-p", "focus-map.window=9"])
    assert rc == 0
    for name in ("results.csv", "summary.csv", "run.json"):
        assert (out / name).is_file(), name
    rows = _read_csv(out / "results.csv")
    assert list(rows[0]) == list(B.CSV_COLUMNS)
    assert len(rows) == 2 * 5
    by = {(r["case"], r["method"]): r for r in rows}
    for case in ("case_0000", "case_0001"):
        avg, fm, pc = by[(case, "average")], by[(case, "focus-map")], by[(case, "pcanet")]
        for r in (avg, fm, pc):
            assert r["status"] == "ok"
            assert 0 < float(r["ssim"]) <= 1 and float(r["psnr"]) > 15
            assert float(r["s_per_mp"]) > 0 and float(r["peak_mb"]) >= 0
            for k in ("qabf", "qmi", "qy", "qcb", "psnr_band", "sharpness", "artifacts"):
                assert r[k] != "", k
        # (pcanet's low-frequency PCA filters are weak in the nearly flat, 8-bit quantised sky of one case)
        assert avg["accuracy"] == "" and 0.9 < float(fm["accuracy"]) <= 1 and 0.7 < float(pc["accuracy"]) <= 1
        assert float(avg["ssim"]) < float(fm["ssim"]) and float(avg["ssim"]) < float(pc["ssim"])
        assert float(avg["sharpness"]) < float(pc["sharpness"])
        assert by[(case, "broken")]["status"] == "failed" and "AttributeError" in by[(case, "broken")]["error"]
        assert by[(case, "late")]["status"] == "error" and "too big" in by[(case, "late")]["error"]
    summary = _read_csv(out / "summary.csv")
    assert {r["method"] for r in summary} == {"average", "focus-map", "pcanet", "broken", "late"}
    assert json.loads((out / "run.json").read_text())["params"] == {"focus-map": {"window": 9}}
    cap = capsys.readouterr()
    assert "broken" in cap.err and "| focus-map |" in cap.out  # the printed summary table
    # --strict turns failures into exit status 1
    assert main(["bench", f"{tiny_set}:1", "-m", "average,broken", "-o", str(out), "-q", "--strict"]) == 1


@pytest.mark.slow
def test_paperbench_report(tmp_path, tiny_set):
    out = tmp_path / "paper"
    assert P.main([str(tiny_set), "-m", "average,focus-map,pcanet", "-o", str(out), "-q"]) == 0
    for name in ("results.csv", "summary.csv", "summary.md", "run.json", "grid.png", "bar_ssim.png",
                 "bar_qabf.png", "bar_s_per_mp.png", "bar_peak_mb.png"):
        assert (out / name).is_file(), name
    md = (out / "summary.md").read_text()
    assert "Table 2, measured" in md and "SFF > PCA-Net" in md
    assert "| pcanet |" in md and "0.87" in md


def test_bench_without_data_says_what_is_missing(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MFIF_DATA", raising=False)
    (tmp_path / "nodata").mkdir()
    rc = P.main(["--quick", "--data-root", str(tmp_path / "nodata"), "--synth-root", str(tmp_path / "nodata"),
                 "-o", str(tmp_path / "o"), "-q"])
    assert rc == 2
    assert "no data set" in capsys.readouterr().err
    assert main(["bench", str(tmp_path / "missing"), "-q"]) == 2
    assert main(["bench", str(tmp_path), "-m", "nope", "-q"]) == 2
    assert main(["bench", str(tmp_path), "-p", "average.x=1", "-m", "gff", "-q"]) == 2
    assert main(["bench", "-q"]) == 2  # a folder is required


def test_run_bench_api_with_workers(tiny_set):
    ds = B.scan_folder(tiny_set)
    res = B.run_bench([ds], ["average", "gff"], jobs=2)
    assert [(r["case"], r["method"]) for r in res.rows] == [
        ("case_0000", "average"), ("case_0000", "gff"), ("case_0001", "average"), ("case_0001", "gff")]
    assert all(r["status"] == "ok" for r in res.rows)
    assert res.grid["case"] == "case_0000" and set(res.grid["fused"]) == {"average", "gff"}
    y, x, s = P.zoom_window(res.grid)
    h, w = res.grid["sources"][0].shape
    assert 0 <= y <= h - s and 0 <= x <= w - s
    s_avg = [s for s in B.summarize(res.rows) if s["method"] == "average"][0]
    assert s_avg["n"] == 2 and s_avg["ssim_mean"] < 1


def test_reuse_runs_only_what_is_missing(tmp_path, tiny_set):
    first = tmp_path / "first"
    assert P.main([str(tiny_set), "-m", "average", "-o", str(first), "-q", "--no-plots",
                   "--grid-case", "nosuch/case_0001"]) == 2  # no such data set
    assert main(["bench", str(tiny_set), "-m", "average", "-o", str(first), "-q"]) == 0
    old = B.read_results(first)
    assert isinstance(old[0]["ssim"], float) and isinstance(old[0]["width"], int)
    ds = B.scan_folder(tiny_set)
    res = B.run_bench([ds], ["average", "dwt"], reuse=old)
    # the grid case (case_0000) runs afresh; case_0001 keeps its average row
    assert res.info["reused_rows"] == 1
    kept = [r for r in res.rows if r["case"] == "case_0001" and r["method"] == "average"][0]
    assert kept is [r for r in old if r["case"] == "case_0001"][0]
    assert [(r["case"], r["method"]) for r in res.rows] == [
        ("case_0000", "average"), ("case_0000", "dwt"), ("case_0001", "average"), ("case_0001", "dwt")]
    with pytest.raises(UsageError):
        B.read_results(tmp_path / "nothing")
