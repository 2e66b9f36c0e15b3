"""Cost of carrying camera metadata into outputs, and of decoding RAW frames.

Usage::

    .venv/bin/python benchmarks/bench_photo.py [--size 2000x1500]

Writes a synthetic RGB photo with EXIF (Make, Model, DateTimeOriginal) and an sRGB ICC profile,
then times :func:`mfif.io.write_image` without and with ``metadata=`` for JPEG, 8-bit PNG,
16-bit TIFF and float TIFF (median of 3), checks that the pixels read back unchanged and that
exiv2 finds the Make tag; then times the decoding of a synthetic Bayer DNG of the same size
(written with tifffile) through :func:`mfif.io.read_image`. Prints a Markdown table.
"""
from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np


def _median_seconds(fn, repeats: int = 3) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    import tifffile
    from PIL import Image, ImageCms

    from mfif.io import read_image, write_image
    from mfif.metadata import for_output, read_metadata

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", default="2000x1500", help="WxH of the synthetic photo")
    args = ap.parse_args()
    w, h = (int(v) for v in args.size.lower().split("x"))
    rng = np.random.default_rng(0)
    img8 = (rng.random((h, w, 3)) * 255).astype(np.uint8)
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        ex = Image.Exif()
        ex[271], ex[272] = "Canon", "EOS R5"
        ex.get_ifd(0x8769)[36867] = "2024:05:01 10:20:30"
        icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
        Image.fromarray(img8).save(d / "src.jpg", exif=ex.tobytes(), icc_profile=icc)
        meta = for_output(read_metadata(d / "src.jpg"))
        print(f"| output ({w}x{h}) | without metadata, ms | with metadata, ms | pixels kept | Make read back |")
        print("|---|---|---|---|---|")
        for name, img in (("jpg", img8), ("png", img8), ("tif 16-bit", img8.astype(np.uint16) * 257),
                          ("tif float", img8.astype(np.float32) / 255)):
            p = d / ("o." + name.split()[0])
            plain = _median_seconds(lambda: write_image(p, img))
            tagged = _median_seconds(lambda: write_image(p, img, metadata=meta))
            kept = "lossy" if name == "jpg" else str(np.array_equal(read_image(p), img))
            print(f"| {name} | {plain * 1e3:.0f} | {tagged * 1e3:.0f} | {kept} | "
                  f"{read_metadata(p).exif.get('Exif.Image.Make')} |")
        try:
            import rawpy  # noqa: F401
        except ImportError:
            print("\nrawpy not installed: no RAW timing")
            return
        cfa = (rng.random((h // 2 * 2, w // 2 * 2)) * 4000).astype(np.uint16)
        tags = [(50706, "B", 4, (1, 4, 0, 0), True), (33421, "H", 2, (2, 2), True),
                (33422, "B", 4, (0, 1, 1, 2), True), (50717, "H", 1, 4095, True),
                (50721, "2i", 9, tuple(v for x in np.eye(3).ravel() for v in (int(x * 10000), 10000)), True)]
        tifffile.imwrite(d / "f.dng", cfa, photometric=32803, extratags=tags)
        t = _median_seconds(lambda: read_image(d / "f.dng"))
        print(f"\nDNG {cfa.shape[1]}x{cfa.shape[0]} Bayer -> 16-bit RGB through rawpy: {t * 1e3:.0f} ms (median of 3)")


if __name__ == "__main__":
    main()
