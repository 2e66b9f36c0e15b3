"""``mfif batch`` (issue 17): whole shoots in one command, resumable, failures reported."""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
from PIL import Image

from mfif.cli import main

EXIF_IFD = 0x8769


def frames(folder: Path, n=2, *, size=(40, 48), seed=0, stamps=None, prefix="f", sizes=None) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        h, w = sizes[i] if sizes else size
        img = (rng.random((h, w, 3)) * 255).astype(np.uint8)
        p = folder / f"{prefix}{i}.jpg"
        exif = Image.Exif()
        if stamps:
            exif.get_ifd(EXIF_IFD)[36867] = stamps[i]
        Image.fromarray(img).save(p, exif=exif.tobytes())
        out.append(p)
    return out


def summary(out: Path) -> dict:
    data = json.loads((out / "summary.json").read_text())
    return {s["name"]: s for s in data["stacks"]}


def test_batch_tree_broken_folder_resume_force(tmp_path, capsys):
    root, out = tmp_path / "shoot", tmp_path / "out"
    frames(root / "bee", 3)
    frames(root / "fly", 2, seed=1)
    frames(root / "broken", 2, sizes=[(40, 48), (40, 56)])  # frames of different sizes
    (root / "corrupt").mkdir()
    frames(root / "corrupt", 1)
    (root / "corrupt" / "f1.jpg").write_bytes(b"\xff\xd8 not really a jpeg" * 4)
    frames(root / "single", 1)  # one frame: no stack
    args = ["batch", str(root), "-o", str(out), "-m", "focus-map", "--depth-maps"]
    assert main(args) == 1  # some failed
    captured = capsys.readouterr()
    s = summary(out)
    assert {k: v["status"] for k, v in s.items()} == {"bee": "ok", "fly": "ok", "broken": "failed", "corrupt": "failed"}
    assert "share a shape" in s["broken"]["error"] and "f1.jpg" in s["corrupt"]["error"]
    assert s["bee"]["method"] == "focus-map" and s["bee"]["seconds"] > 0 and len(s["bee"]["frames"]) == 3
    assert s["bee"]["output"] == str(out / "bee.tif") and s["broken"]["output"] is None
    for name in ("bee", "fly"):
        assert (out / f"{name}.tif").is_file() and (out / f"{name}-depth.png").is_file()
    assert "broken" in captured.out and "failed" in captured.out  # the summary table
    assert "stack broken failed" in captured.err
    mtime = os.stat(out / "bee.tif").st_mtime_ns
    # resumed: finished stacks skipped, the broken ones tried (and failing) again
    assert main(args) == 1
    s = summary(out)
    assert s["bee"]["status"] == s["fly"]["status"] == "skipped" and s["broken"]["status"] == "failed"
    assert os.stat(out / "bee.tif").st_mtime_ns == mtime
    assert "skipped" in capsys.readouterr().out
    # --force redoes them; a tree without broken stacks exits 0
    for bad in ("broken", "corrupt"):
        for f in (root / bad).iterdir():
            f.unlink()
        (root / bad).rmdir()
    assert main(args + ["--force", "-q"]) == 0
    assert summary(out)["bee"]["status"] == "ok"
    assert os.stat(out / "bee.tif").st_mtime_ns != mtime


def test_batch_usage_errors(tmp_path, capsys):
    root = tmp_path / "shoot"
    frames(root / "a", 2)
    assert main(["batch", str(tmp_path / "missing"), "-o", str(tmp_path / "o")]) == 2
    assert main(["batch", str(root), "-o", str(root)]) == 2  # outputs would be read as frames
    assert "ROOT itself" in capsys.readouterr().err
    assert main(["batch", str(root), "-o", str(tmp_path / "o"), "--every", "1"]) == 2
    assert main(["batch", str(root), "-o", str(tmp_path / "o"), "--split-by-time", "nan"]) == 2
    assert main(["batch", str(root), "-o", str(tmp_path / "o"), "--every", "2", "--split-by-time", "5"]) == 2
    assert main(["batch", str(root), "-o", str(tmp_path / "o"), "-m", "average", "--depth-maps"]) == 2
    assert main(["batch", str(root), "-o", str(tmp_path / "o"), "--format", "bmp"]) == 2
    frames(root / "a-depth", 2)  # its output a-depth.png would be stack a's depth map
    assert main(["batch", str(root), "-o", str(tmp_path / "o"), "--format", "png", "--depth-maps", "-m", "gff"]) == 2
    assert "a-depth.png" in capsys.readouterr().err
    for f in (root / "a-depth").iterdir():
        f.unlink()
    (root / "a-depth").rmdir()
    assert not (tmp_path / "o").exists()  # nothing written before the checks pass
    # an OUTDIR inside ROOT is left out of the scan: a second run finds the same stacks
    inside = root / "fused"
    assert main(["batch", str(root), "-o", str(inside), "-m", "average", "-q", "--format", "jpg"]) == 0
    assert main(["batch", str(root), "-o", str(inside), "-m", "average", "-q", "--format", "jpg"]) == 0
    assert set(summary(inside)) == {"a"} and summary(inside)["a"]["status"] == "skipped"


def test_batch_flat_every(tmp_path):
    root, out = tmp_path / "flat", tmp_path / "out"
    frames(root, 7, prefix="IMG_")
    assert main(["batch", str(root), "-o", str(out), "-m", "average", "-q", "--every", "3", "--format", "png"]) == 1
    s = summary(out)
    assert [v["frames"] for v in s.values()] == [[str(root / f"IMG_{i}.jpg") for i in g]
                                                  for g in ([0, 1, 2], [3, 4, 5], [6])]
    assert s["IMG_0"]["status"] == s["IMG_3"]["status"] == "ok" and s["IMG_6"]["status"] == "failed"
    assert (out / "IMG_0.png").is_file() and (out / "IMG_3.png").is_file()


def test_batch_flat_split_by_time(tmp_path, capsys):
    root, out = tmp_path / "flat", tmp_path / "out"
    stamps = ["2024:05:01 10:00:00", "2024:05:01 10:00:01", "2024:05:01 10:00:02",
              "2024:05:01 10:05:00", "2024:05:01 10:05:02"]
    frames(root, 5, stamps=stamps)
    for i, p in enumerate(sorted(root.iterdir())):  # mtimes that would split elsewhere
        os.utime(p, (1e9 + 100 * i, 1e9 + 100 * i))
    assert main(["batch", str(root), "-o", str(out), "-m", "average", "--split-by-time", "30"]) == 0
    s = summary(out)
    assert [len(v["frames"]) for v in s.values()] == [3, 2] and list(s) == ["f0", "f3"]
    assert "modification time" not in capsys.readouterr().err
    # without DateTimeOriginal: the file times, with a warning
    root2 = tmp_path / "flat2"
    frames(root2, 4)
    for i, p in enumerate(sorted(root2.iterdir())):
        t = 1e9 + (0 if i < 2 else 1000) + i
        os.utime(p, (t, t))
    assert main(["batch", str(root2), "-o", str(tmp_path / "out2"), "-m", "average", "--split-by-time", "30"]) == 0
    assert "modification time" in capsys.readouterr().err
    assert [len(v["frames"]) for v in summary(tmp_path / "out2").values()] == [2, 2]
    # a flat folder without a split option is one stack, named after the folder
    assert main(["batch", str(root), "-o", str(tmp_path / "out3"), "-m", "average", "-q"]) == 0
    assert list(summary(tmp_path / "out3")) == ["flat"] and (tmp_path / "out3" / "flat.tif").is_file()


def test_batch_multipage_tiffs_are_stacks_of_their_own(tmp_path, capsys):
    """Each multi-page TIFF in ROOT is a stack named after the file, fused as the same planes in a
    sub-folder would be; the other frames in ROOT stay one stack; a bad z-stack fails alone."""
    import tifffile
    from tiff_support import write_pages

    from mfif.io import read_image

    root, out = tmp_path / "shoot", tmp_path / "out"
    planes = [np.asarray(Image.open(p)) for p in frames(tmp_path / "src", 3, seed=4)]
    root.mkdir()
    write_pages(root / "slide1.tif", planes)
    write_pages(root / "odd.tif", [planes[0], planes[1][:20]])  # pages of two sizes
    frames(root, 2, seed=5, prefix="g")  # two plain frames directly in ROOT: one stack
    sub = root / "same"
    sub.mkdir()
    for k, p in enumerate(planes):
        tifffile.imwrite(sub / f"p{k}.tif", p, photometric="rgb")
    assert main(["batch", str(root), "-o", str(out), "-m", "focus-map", "--depth-maps", "-q"]) == 1
    s = summary(out)
    assert {k: v["status"] for k, v in s.items()} == {"slide1": "ok", "odd": "failed", "shoot": "ok", "same": "ok"}
    assert len(s["slide1"]["frames"]) == 3 and s["slide1"]["frames"][2].endswith("slide1.tif plane 3")
    assert "odd.tif" in s["odd"]["error"] and "pages must share a size" in s["odd"]["error"]
    assert len(s["shoot"]["frames"]) == 2
    assert np.array_equal(read_image(out / "slide1.tif"), read_image(out / "same.tif"))
    assert np.array_equal(read_image(out / "slide1-depth.png"), read_image(out / "same-depth.png"))
