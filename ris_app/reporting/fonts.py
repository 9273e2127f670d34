"""Fonts for the documents the RIS prints: every script a name or report may be written in.

The RIS stores names and report text as Unicode and accepts any script. reportlab draws a
character only with a font that has its glyph (otherwise an empty box), so a paragraph is
split into runs, each set in the first face of FACES that has every glyph of the run:
DejaVu for Latin, Greek, Cyrillic, Hebrew and Arabic; Droid Sans Fallback for Chinese,
Japanese and Korean; Loma for Thai. The Debian packages are installed by `make setup`
(Makefile RUN_DEBS). SCRIPTS is the list of scripts the RIS promises to print, with a
sample of each; tests/reporting/test_fonts.py renders them and checks no glyph is missing.

reportlab lays text out left to right with each letter in its isolated form, so a line
holding a right-to-left script (Hebrew, Arabic) is given its visual order (python-bidi)
and Arabic its joined forms (arabic-reshaper) first. Known limit: that is done per line of
the source text, so an RTL paragraph long enough to wrap reads its wrapped lines in the
wrong order; names and short lines are right.
"""

from __future__ import annotations

import logging
import unicodedata
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from xml.sax.saxutils import escape

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Face:
    name: str  # the name registered with reportlab
    regular: str
    bold: str  # "" when the face has no bold: the regular is used
    package: str  # the Debian package that installs it


# In order of preference: a character is set in the first face that has it.
FACES = (
    Face(
        "DejaVuSans",
        "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
        "/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf",
        "fonts-dejavu-core",
    ),
    Face(
        "DroidSansFallback",
        "/usr/share/fonts-droid-fallback/truetype/DroidSansFallback.ttf",
        "",
        "fonts-droid-fallback",
    ),
    Face(
        "Loma",
        "/usr/share/fonts/truetype/tlwg/Loma.ttf",
        "/usr/share/fonts/truetype/tlwg/Loma-Bold.ttf",
        "fonts-tlwg-loma-ttf",
    ),
)

# The scripts the RIS prints, each with a sample name or phrase (test data, not patients).
SCRIPTS = {
    "Latin": "Müller-Lüdenscheidt, Çağla Øster Łukasz Ñúñez Đorđe Þórður Œuvre",
    "Greek": "Παπαδοπούλου, Ελένη",
    "Cyrillic": "Достоевская, Юлия Ёлкина",
    "Hebrew": "כהן, שרה",
    "Arabic": "الحسيني، فاطمة",
    "Chinese": "张伟 王芳 陳淑貞 黃",
    "Japanese": "山田 太郎 やまだ たろう ヤマダ タロウ",
    "Korean": "김민준 이서연 박지훈",
    "Thai": "สมชาย ใจดี",
    "Punctuation": "– — “” ‘’ … • ° ± × µ € ²",  # noqa: RUF001 (the point of the sample)
}

FALLBACK = ("Helvetica", "Helvetica-Bold")


@cache
def _cmap(path: str) -> frozenset[int]:
    from reportlab.pdfbase.ttfonts import TTFontFile

    return frozenset(TTFontFile(path).charToGlyph)


@cache
def available() -> tuple[Face, ...]:
    """The faces installed on this machine, registered with reportlab (once)."""
    from reportlab.pdfbase import pdfmetrics
    from reportlab.pdfbase.ttfonts import TTFont

    found = []
    for face in FACES:
        if not Path(face.regular).exists():
            log.warning("font %s missing (Debian package %s): its scripts print as boxes", face.regular, face.package)
            continue
        pdfmetrics.registerFont(TTFont(face.name, face.regular))
        bold = face.bold if face.bold and Path(face.bold).exists() else face.regular
        pdfmetrics.registerFont(TTFont(f"{face.name}-Bold", bold))
        found.append(face)
    return tuple(found)


def base_fonts() -> tuple[str, str]:
    """The regular and bold font names paragraph styles start from."""
    faces = available()
    return (faces[0].name, f"{faces[0].name}-Bold") if faces else FALLBACK


def _face_of(ch: str, faces: tuple[Face, ...]) -> Face | None:
    if ch.isspace():
        return None  # any face draws a space: it stays in the current run
    code = ord(ch)
    for face in faces:
        if code in _cmap(face.regular):
            return face
    return None


def runs(text: str) -> list[tuple[str | None, str]]:
    """The text cut into (face name, piece): None where no installed face has the glyph
    (or the piece is only spaces)."""
    faces = available()
    out: list[tuple[str | None, str]] = []
    current: str | None = None
    piece = ""
    for ch in text:
        face = _face_of(ch, faces)
        name = face.name if face else (current if ch.isspace() else None)
        if piece and name != current:
            out.append((current, piece))
            piece = ""
        current = name
        piece += ch
    if piece:
        out.append((current, piece))
    return out


def missing(text: str) -> str:
    """The characters of `text` no installed face can draw (spaces and controls aside)."""
    faces = available()
    return "".join(sorted({ch for ch in text if ch.isprintable() and _face_of(ch, faces) is None and not ch.isspace()}))


RTL_CLASSES = frozenset({"R", "AL"})  # Unicode bidirectional classes of right-to-left letters


def visual(line: str) -> str:
    """One line in the order it is drawn: unchanged unless it holds right-to-left letters."""
    if not any(unicodedata.bidirectional(ch) in RTL_CLASSES for ch in line):
        return line
    import arabic_reshaper
    from bidi import get_display

    return get_display(arabic_reshaper.reshape(line))


def markup(text: str, *, bold: bool = False) -> str:
    """`text` as reportlab paragraph markup, each run in a face that has its glyphs, line
    breaks kept, right-to-left lines in visual order."""
    base = available()[0].name if available() else None
    parts = []
    for name, piece in runs("\n".join(visual(line) for line in text.split("\n"))):
        body = escape(piece).replace("\n", "<br/>")
        if name is None or name == base:
            parts.append(body)
        else:
            parts.append(f'<font name="{name}-Bold">{body}</font>' if bold else f'<font name="{name}">{body}</font>')
    return "".join(parts)
