"""Every script the RIS accepts prints in the report PDF: no glyph is missing (issue 14).

The fonts come from Debian packages that `make setup` installs (Makefile RUN_DEBS); the
PDF is rendered by the real reportlab with the real fonts, then read back by poppler's
pdffonts/pdftotext (TEST_DEBS) as a reader's PDF viewer would.
"""

from __future__ import annotations

import shutil
import subprocess
import unicodedata

import pytest

from ris_app.reporting import fonts
from ris_app.reporting import lifecycle as r
from ris_app.reporting.header import header_for
from ris_app.reporting.pdf import render_pdf
from ris_app.scheduling.orders import PatientData, create_patient
from ris_app.web.auth import create_user
from tests.reporting.test_reporting import _study, s  # noqa: F401 (the session fixture)

ALL = " ".join(fonts.SCRIPTS.values())


def test_every_face_is_installed():
    installed = {f.name for f in fonts.available()}
    assert installed == {f.name for f in fonts.FACES}, "run `make setup`: a font package is missing"


@pytest.mark.parametrize("script", sorted(fonts.SCRIPTS))
def test_every_script_has_its_glyphs(script):
    # as stored, and as drawn (Arabic in its joined presentation forms)
    assert fonts.missing(fonts.SCRIPTS[script]) == ""
    assert fonts.missing(fonts.visual(fonts.SCRIPTS[script])) == ""


def test_right_to_left_lines_are_drawn_in_visual_order():
    assert fonts.visual("Cohen") == "Cohen"
    assert fonts.visual("כהן") == "ןהכ"
    assert unicodedata.normalize("NFKC", fonts.visual("فاطمة")) == "ةمطاف"


def test_runs_put_each_character_in_a_face_that_has_it():
    cmaps = {f.name: fonts._cmap(f.regular) for f in fonts.FACES}
    for name, piece in fonts.runs(ALL):
        for ch in piece:
            assert ch.isspace() or ord(ch) in cmaps[name], (name, ch)
    assert {name for name, _ in fonts.runs(ALL)} == {f.name for f in fonts.FACES}


def test_markup_escapes_and_keeps_lines():
    assert fonts.markup("a < b & c\nd") == "a &lt; b &amp; c<br/>d"
    assert fonts.markup("金", bold=True) == '<font name="DroidSansFallback-Bold">金</font>'


@pytest.mark.db
@pytest.mark.skipif(not shutil.which("pdftotext"), reason="poppler-utils (TEST_DEBS) not installed")
def test_report_pdf_prints_every_script(s, tmp_path):  # noqa: F811
    """Names in each script and a report holding them all: every face embedded, the text
    read back whole."""
    rad = create_user(s, "rad9", "password-123", "radiologist", full_name="Dr 山田 Ada")
    text = "\n".join(f"{k}: {v}" for k, v in fonts.SCRIPTS.items())
    pdfs = []
    for i, (script, sample) in enumerate(fonts.SCRIPTS.items()):
        family, _, given = sample.partition(" ")
        patient = create_patient(s, PatientData(mrn=f"G{i}", family_name=family, given_name=given, sex="F"))
        study = _study(s, patient)
        report = r.start_report(s, study, rad)
        v = r.save_report(s, report, rad, {"findings": text, "impression": sample}, "sign")
        pdf = tmp_path / f"{script}.pdf"
        pdf.write_bytes(render_pdf(report, v, header_for(report), "Radiologie Zürich 放射科"))
        pdfs.append((sample, pdf))
    for sample, pdf in pdfs:
        embedded = subprocess.run(["pdffonts", str(pdf)], capture_output=True, text=True, check=True).stdout
        for face in fonts.FACES:
            assert face.name in embedded, (face.name, embedded)
        out = subprocess.run(["pdftotext", str(pdf), "-"], capture_output=True, text=True, check=True).stdout
        flat = unicodedata.normalize("NFKC", "".join(out.split()))  # Arabic drawn in presentation forms
        for ch in sample:
            assert ch.isspace() or unicodedata.normalize("NFKC", ch) in flat, (sample, ch)
