"""Rewrite docs/img/web.png, the README's picture of the web page (headless Debian Chromium).

Runs the browser test that makes it: ``.venv/bin/python benchmarks/web_screenshot.py``.
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

if __name__ == "__main__":
    env = dict(os.environ, MFIF_WEB_SCREENSHOT="1")
    test = "tests/test_web_browser.py::test_readme_screenshot"
    sys.exit(subprocess.call([sys.executable, "-m", "pytest", "-q", test], cwd=REPO, env=env))
