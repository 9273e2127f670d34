"""Text right: MSH-18 character sets, HL7 escape sequences, and names (XPN <-> DICOM PN)."""

from __future__ import annotations

from dataclasses import dataclass

# MSH-18 (HL7 table 0211) -> Python codec. Only what a European/Asian EHR actually sends;
# anything else is refused with an AR naming MSH-18 rather than guessed.
CHARSETS: dict[str, str] = {
    "ASCII": "ascii",
    "ISO IR6": "ascii",
    "8859/1": "latin-1",
    "ISO IR100": "latin-1",
    "8859/2": "iso8859_2",
    "ISO IR101": "iso8859_2",
    "8859/5": "iso8859_5",
    "ISO IR144": "iso8859_5",
    "8859/7": "iso8859_7",
    "ISO IR126": "iso8859_7",
    "8859/9": "iso8859_9",
    "ISO IR148": "iso8859_9",
    "8859/15": "iso8859_15",
    "UNICODE UTF-8": "utf-8",
    "UNICODE": "utf-8",
    "ISO IR192": "utf-8",
    "GB 18030-2000": "gb18030",
    "KS X 1001": "euc_kr",
    "ISO IR87": "iso2022_jp",
}


class UnknownCharset(ValueError):
    pass


def codec_for(msh18: str, default: str = "UNICODE UTF-8") -> str:
    """The Python codec for an MSH-18 value (the first repetition names the message's set)."""
    name = (msh18.split("~")[0].strip() or default).upper()
    try:
        return CHARSETS[name]
    except KeyError:
        raise UnknownCharset(name) from None


def sniff_msh18(raw: bytes) -> str:
    """MSH-18 read from the raw bytes before decoding: the MSH segment itself is ASCII."""
    end = min((i for i in (raw.find(b"\r"), raw.find(b"\n")) if i >= 0), default=len(raw))
    head = raw[:end].decode("latin-1")
    if len(head) < 4 or not head.startswith("MSH"):
        return ""
    fields = head.split(head[3])
    # fields[0] == "MSH", fields[1] is MSH-2; MSH-n is fields[n-1].
    return fields[17] if len(fields) > 17 else ""


@dataclass(frozen=True)
class Delimiters:
    field: str = "|"
    component: str = "^"
    repetition: str = "~"
    escape: str = "\\"
    subcomponent: str = "&"

    @property
    def encoding_characters(self) -> str:
        return self.component + self.repetition + self.escape + self.subcomponent


DEFAULT = Delimiters()


def escape(value: str, d: Delimiters = DEFAULT) -> str:
    """Escape a value for an ER7 field: delimiters become \\F\\ \\S\\ \\T\\ \\R\\ \\E\\, line
    breaks \\.br\\ (the escape character first, so it is not escaped twice)."""
    if not value:
        return ""
    e = d.escape
    out = value.replace(e, f"{e}E{e}")
    for ch, code in ((d.field, "F"), (d.component, "S"), (d.subcomponent, "T"), (d.repetition, "R")):
        out = out.replace(ch, f"{e}{code}{e}")
    out = out.replace("\r\n", "\n").replace("\r", "\n").replace("\n", f"{e}.br{e}")
    return out


def unescape(value: str, d: Delimiters = DEFAULT) -> str:
    """Resolve escape sequences in one component or subcomponent. \\Xhh..\\ is decoded as
    UTF-8 bytes when it can be, else Latin-1; highlighting (\\H\\ \\N\\) and character-set
    switches (\\Cxxyy\\ \\Mxxyyzz\\) are dropped; an unterminated escape is kept as text."""
    e = d.escape
    if e not in value:
        return value
    out: list[str] = []
    i = 0
    n = len(value)
    while i < n:
        ch = value[i]
        if ch != e:
            out.append(ch)
            i += 1
            continue
        j = value.find(e, i + 1)
        if j < 0:
            out.append(value[i:])
            break
        seq = value[i + 1 : j]
        i = j + 1
        simple = {"F": d.field, "S": d.component, "T": d.subcomponent, "R": d.repetition, "E": e}
        if seq in simple:
            out.append(simple[seq])
        elif seq == ".br":
            out.append("\n")
        elif seq in ("H", "N") or seq[:1] in ("C", "M") or seq.startswith("."):
            continue
        elif seq[:1] == "X" and len(seq) % 2 == 1:
            try:
                data = bytes.fromhex(seq[1:])
            except ValueError:
                out.append(f"{e}{seq}{e}")
                continue
            try:
                out.append(data.decode("utf-8"))
            except UnicodeDecodeError:
                out.append(data.decode("latin-1"))
        else:
            out.append(f"{e}{seq}{e}")
    return "".join(out)


# ----------------------------------------------------------------------------- names
@dataclass(frozen=True)
class PersonName:
    family: str = ""
    given: str = ""
    middle: str = ""
    prefix: str = ""
    suffix: str = ""

    def __bool__(self) -> bool:
        return any((self.family, self.given, self.middle, self.prefix, self.suffix))


def xpn_components(components: list[str]) -> PersonName:
    """An XPN/XCN name from its (unescaped) components. XPN: family^given^middle^suffix^
    prefix^degree; XCN (physicians) starts with an ID: pass components[1:]."""
    c = list(components) + [""] * 6
    return PersonName(family=c[0], given=c[1], middle=c[2], suffix=c[3], prefix=c[4])


def name_to_xpn(name: PersonName, d: Delimiters = DEFAULT) -> str:
    """ER7 XPN for a name (escaped), trailing empty components dropped."""
    parts = [name.family, name.given, name.middle, name.suffix, name.prefix]
    while parts and not parts[-1]:
        parts.pop()
    return d.component.join(escape(p, d) for p in parts)


def pn_to_name(pn: str) -> PersonName:
    """A DICOM PN (alphabetic group only: family^given^middle^prefix^suffix)."""
    c = pn.split("=")[0].split("^") + [""] * 5
    return PersonName(family=c[0], given=c[1], middle=c[2], prefix=c[3], suffix=c[4])


def name_to_pn(name: PersonName) -> str:
    """DICOM PN: family^given^middle^prefix^suffix (note: prefix before suffix, unlike XPN)."""
    parts = [name.family, name.given, name.middle, name.prefix, name.suffix]
    while parts and not parts[-1]:
        parts.pop()
    return "^".join(parts)


def xpn_to_pn(xpn: str, d: Delimiters = DEFAULT) -> str:
    """An ER7 XPN value as a DICOM PN."""
    first = xpn.split(d.repetition)[0]
    comps = [unescape(c.split(d.subcomponent)[0], d) for c in first.split(d.component)]
    return name_to_pn(xpn_components(comps))


def pn_to_xpn(pn: str, d: Delimiters = DEFAULT) -> str:
    """A DICOM PN as an ER7 XPN value."""
    return name_to_xpn(pn_to_name(pn), d)
