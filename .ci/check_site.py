"""Check the built documentation site (``mkdocs build`` output) for what a strict build does not catch: Sphinx
roles left as raw text, figures that do not load, Markdown tables left unrendered (outside code blocks)."""

from __future__ import annotations

import re
import sys
from html import unescape
from pathlib import Path

ROLE = re.compile(r":(?:class|func|meth|mod|attr|data|exc|obj):|~rce_art\.")


def problems(site: Path) -> list[str]:
    out = []
    pages = sorted(site.rglob("*.html"))
    if not pages:
        return [f"no HTML pages under {site}"]
    for page in pages:
        html = page.read_text(encoding="utf-8")
        blocks = re.sub(r"<(pre|script|style)\b.*?</\1>", " ", html, flags=re.S)  # inline code kept
        words = unescape(re.sub(r"<[^>]+>", "", blocks))
        prose = re.sub(r"<code\b.*?</code>", " ", blocks, flags=re.S)
        text = unescape(re.sub(r"<[^>]+>", " ", prose))
        rel = page.relative_to(site)
        if ROLE.search(words):
            out.append(f"{rel}: raw Sphinx role {ROLE.search(words).group(0)!r}")
        if re.search(r"\|\s*-{3,}\s*\|", text):
            out.append(f"{rel}: a Markdown table was not rendered")
        for src in re.findall(r'<img[^>]+src="([^"]+)"', html):
            if src.startswith(("http:", "https:", "data:")):
                continue
            if not (page.parent / src.split("#")[0]).resolve().is_file():
                out.append(f"{rel}: figure {src} does not exist")
    return out


if __name__ == "__main__":
    found = problems(Path(sys.argv[1] if len(sys.argv) > 1 else "site"))
    for p in found:
        print(p)
    sys.exit(1 if found else 0)
