"""The docs follow the code: every setting is documented."""
from pathlib import Path

from ris_app.config import SETTINGS

DOCS = Path(__file__).resolve().parents[2] / "docs"


def test_every_setting_is_in_the_configuration_reference():
    text = (DOCS / "configuration.md").read_text()
    missing = [s.env for s in SETTINGS if f"`{s.env}`" not in text]
    assert not missing, f"document these in docs/configuration.md: {missing}"
