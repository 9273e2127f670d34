"""The docs follow the code: every setting is documented."""

import re
from pathlib import Path

from ris_app.config import SETTINGS

DOCS = Path(__file__).resolve().parents[2] / "docs"


def test_every_setting_is_in_the_configuration_reference():
    text = (DOCS / "configuration.md").read_text()
    missing = [s.env for s in SETTINGS if f"`{s.env}`" not in text]
    assert not missing, f"document these in docs/configuration.md: {missing}"


def test_every_code_path_the_docs_name_exists():
    repo = DOCS.parent
    texts = {p: p.read_text() for p in [*DOCS.glob("*.md"), repo / "README.md", repo / "CONTRIBUTING.md"]}
    named = {
        (p.name, m)
        for p, t in texts.items()
        for m in re.findall(r"\b((?:ris_app|plugins|tests|bench|scripts)/[\w./-]*\w)", t)
    }
    missing = sorted((doc, path) for doc, path in named if not (repo / path).exists())
    assert not missing, f"the docs name paths that do not exist: {missing}"
