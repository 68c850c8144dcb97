"""rlrec's own documentation stands alone: it cites the papers or docs/, never internal specs."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SPEC = re.compile(r"spec-(offline|online)|\bspec §|\(§[A-I]\.?\d")


def test_no_citation_of_internal_specs() -> None:
    files = [ROOT / "README.md", *(ROOT / "docs").rglob("*.md"), *(ROOT / "src").rglob("*.py")]
    files += [*(ROOT / "configs").rglob("*.yaml"), *(ROOT / "reproductions").glob("*.py")]
    hits = [
        f"{path.relative_to(ROOT)}:{number}: {line.strip()}"
        for path in files
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if SPEC.search(line)
    ]
    assert not hits, "\n".join(hits[:20])
