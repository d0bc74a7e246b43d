"""Run the README's drop-in example against the installed wheel (not the source tree), and check what the wheel
ships: the package's py.typed marker and the licence. Used by .ci/run in a fresh venv."""

from __future__ import annotations

import importlib.metadata as md
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

readme = Path(sys.argv[1]).resolve()
section = readme.read_text()[readme.read_text().index("## Drop-in") :]
code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
files = [str(f) for f in md.files("rce-art") or []]
assert any(f.endswith("rce_art/py.typed") for f in files), "the wheel does not ship rce_art/py.typed"
assert any(Path(f).name.startswith("LICENSE") for f in files), "the wheel does not ship the LICENSE"
assert "MIT" in (md.metadata("rce-art").get("License") or "") + " ".join(md.metadata("rce-art").get_all("Classifier"))
with tempfile.TemporaryDirectory() as tmp:
    env = {**os.environ, "PYTHONPATH": ""}
    check = "import rce_art, sys; assert 'site-packages' in rce_art.__file__, rce_art.__file__"
    subprocess.run([sys.executable, "-c", check], cwd=tmp, env=env, check=True)
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp, env=env, check=True, capture_output=True, text=True)
    print(out.stdout.strip())
    assert re.search(r"flagged \d+% of FGSM inputs", out.stdout), out.stdout + out.stderr
print(f"wheel {md.version('rce-art')}: README drop-in ran from site-packages; py.typed and LICENSE shipped")
