"""HL7 settings, read from the ORTHANC_RIS_HL7_* variables named in ris_app.config.SETTINGS."""

from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass

from ris_app.config import SETTINGS

_DEFAULTS = {s.env: s.default for s in SETTINGS}


@dataclass(frozen=True)
class Destination:
    """An HL7 peer that receives our outbound messages (the EHR, an interface engine)."""

    name: str
    host: str
    port: int
    tls: bool = False


def parse_destinations(value: str, setting: str = "ORTHANC_RIS_HL7_DESTINATIONS") -> tuple[Destination, ...]:
    """'EHR=ehr.example.org:2576;LIS=tls://10.0.0.7:6661' -> destinations (tls:// = MLLP over TLS)."""
    out = []
    for item in (i.strip() for i in value.replace(",", ";").split(";")):
        if not item:
            continue
        name, _, addr = item.partition("=")
        addr = addr.strip()
        tls = addr.lower().startswith("tls://")
        host, _, port = (addr[len("tls://") :] if tls else addr).rpartition(":")
        if not name or not host or not port.isdigit():
            raise ValueError(f"{setting}: {item!r} is not NAME=host:port or NAME=tls://host:port")
        out.append(Destination(name.strip(), host.strip(), int(port), tls))
    return tuple(out)


FINANCIAL_VERSIONS = ("2.3.1", "2.5.1")


def parse_versions(value: str, names: tuple[str, ...]) -> dict[str, str]:
    """ORTHANC_RIS_HL7_FINANCIAL_VERSIONS: 'BILLING=2.3.1' -> {name: version} for every
    financial destination (2.5.1 unless named)."""
    versions = dict.fromkeys(names, "2.5.1")
    for item in (i.strip() for i in value.split(";")):
        if not item:
            continue
        name, _, version = (p.strip() for p in item.partition("="))
        if name not in versions or version not in FINANCIAL_VERSIONS:
            raise ValueError(
                f"ORTHANC_RIS_HL7_FINANCIAL_VERSIONS: {item!r} is not NAME=2.3.1 or NAME=2.5.1 of a financial destination"
            )
        versions[name] = version
    return versions


def parse_allow(value: str) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    """ORTHANC_RIS_HL7_ALLOW: '10.1.2.3, 10.20.0.0/16, ::1' -> networks (a bare address is a /32 or /128)."""
    out = []
    for item in (i.strip() for i in value.split(",")):
        if not item:
            continue
        try:
            out.append(ipaddress.ip_network(item, strict=False))
        except ValueError:
            raise ValueError(f"ORTHANC_RIS_HL7_ALLOW: {item!r} is not an address or network") from None
    return tuple(out)


def parse_rules(value: str) -> dict[tuple[str, str], str]:
    """ORTHANC_RIS_HL7_STATION_RULES -> {(kind, key): AE titles} (see ris_app.hl7.stations)."""
    rules: dict[tuple[str, str], str] = {}
    for item in (i.strip() for i in value.split(";")):
        if not item:
            continue
        kind_key, _, aets = item.partition("=")
        kind, _, key = kind_key.partition(":")
        kind = kind.strip().lower()
        if kind not in ("procedure", "modality") or not key.strip() or not aets.strip():
            raise ValueError(f"ORTHANC_RIS_HL7_STATION_RULES: {item!r} is not procedure:CODE=AET or modality:MOD=AET")
        rules[(kind, key.strip().upper())] = aets.strip()
    return rules


@dataclass(frozen=True)
class Hl7Settings:
    host: str = "127.0.0.1"
    port: int = 2575
    max_message_bytes: int = 1_048_576
    read_timeout: float = 30.0
    idle_timeout: float = 600.0
    max_connections: int = 64
    default_charset: str = "UNICODE UTF-8"
    application: str = "ORTHANC_RIS"
    facility: str = "RADIOLOGY"
    station_rules: str = ""
    destinations: tuple[Destination, ...] = ()
    # Peers that want appointment (SIU) messages; a name may be in both lists.
    scheduling_destinations: tuple[Destination, ...] = ()
    status_message: str = "ORM^O01"
    retry_seconds: float = 2.0
    retry_max_seconds: float = 300.0
    send_timeout: float = 10.0
    allow: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = ()
    tls_cert: str = ""
    tls_key: str = ""
    tls_client_ca: str = ""
    tls_peer_ca: str = ""
    # Billing systems (DFT^P03, ris_app/billing/dft.py) and the HL7 version each takes.
    financial_destinations: tuple[Destination, ...] = ()
    financial_versions: tuple[tuple[str, str], ...] = ()

    def financial_version(self, name: str) -> str:
        return dict(self.financial_versions).get(name, "2.5.1")

    @property
    def all_destinations(self) -> tuple[Destination, ...]:
        """Every peer the outbox sends to, once per name (status, results, SIU, DFT)."""
        seen = {d.name: d for d in (*self.financial_destinations, *self.scheduling_destinations)}
        seen.update({d.name: d for d in self.destinations})
        return tuple(seen.values())

    @property
    def connect_host(self) -> str:
        return "127.0.0.1" if self.host in ("", "0.0.0.0", "::") else self.host

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> Hl7Settings:
        env = dict(os.environ if env is None else env)

        def get(name: str) -> str:
            return (env.get(name) or _DEFAULTS[name]).strip()

        parse_rules(get("ORTHANC_RIS_HL7_STATION_RULES"))  # refuse a bad rule at start, not per message
        status_message = get("ORTHANC_RIS_HL7_STATUS_MESSAGE").upper()
        if status_message not in ("ORM^O01", "OMG^O19"):
            raise ValueError("ORTHANC_RIS_HL7_STATUS_MESSAGE: ORM^O01 or OMG^O19")
        tls_cert, tls_key = get("ORTHANC_RIS_HL7_TLS_CERT"), get("ORTHANC_RIS_HL7_TLS_KEY")
        if bool(tls_cert) != bool(tls_key):
            raise ValueError("ORTHANC_RIS_HL7_TLS_CERT and ORTHANC_RIS_HL7_TLS_KEY go together")
        if get("ORTHANC_RIS_HL7_TLS_CLIENT_CA") and not tls_cert:
            raise ValueError("ORTHANC_RIS_HL7_TLS_CLIENT_CA needs ORTHANC_RIS_HL7_TLS_CERT and _KEY")
        destinations = parse_destinations(get("ORTHANC_RIS_HL7_DESTINATIONS"))
        scheduling = parse_destinations(
            get("ORTHANC_RIS_HL7_SCHEDULING_DESTINATIONS"), "ORTHANC_RIS_HL7_SCHEDULING_DESTINATIONS"
        )
        financial = parse_destinations(
            get("ORTHANC_RIS_HL7_FINANCIAL_DESTINATIONS"), "ORTHANC_RIS_HL7_FINANCIAL_DESTINATIONS"
        )
        addresses = {d.name: d for d in destinations}
        for setting, more in (("SCHEDULING", scheduling), ("FINANCIAL", financial)):
            for d in more:  # one name, one peer: the outbox keys its order on the name
                if addresses.setdefault(d.name, d) != d:
                    raise ValueError(f"ORTHANC_RIS_HL7_{setting}_DESTINATIONS: {d.name} names another peer")
        versions = parse_versions(get("ORTHANC_RIS_HL7_FINANCIAL_VERSIONS"), tuple(d.name for d in financial))
        return cls(
            financial_destinations=financial,
            financial_versions=tuple(versions.items()),
            allow=parse_allow(get("ORTHANC_RIS_HL7_ALLOW")),
            tls_cert=tls_cert,
            tls_key=tls_key,
            tls_client_ca=get("ORTHANC_RIS_HL7_TLS_CLIENT_CA"),
            tls_peer_ca=get("ORTHANC_RIS_HL7_TLS_PEER_CA"),
            host=get("ORTHANC_RIS_HL7_HOST"),
            port=int(get("ORTHANC_RIS_HL7_PORT")),
            max_message_bytes=int(get("ORTHANC_RIS_HL7_MAX_MESSAGE_BYTES")),
            read_timeout=float(get("ORTHANC_RIS_HL7_READ_TIMEOUT")),
            idle_timeout=float(get("ORTHANC_RIS_HL7_IDLE_TIMEOUT")),
            max_connections=int(get("ORTHANC_RIS_HL7_MAX_CONNECTIONS")),
            default_charset=get("ORTHANC_RIS_HL7_DEFAULT_CHARSET"),
            application=get("ORTHANC_RIS_HL7_APPLICATION"),
            facility=get("ORTHANC_RIS_HL7_FACILITY"),
            station_rules=get("ORTHANC_RIS_HL7_STATION_RULES"),
            destinations=destinations,
            scheduling_destinations=scheduling,
            status_message=status_message,
            retry_seconds=float(get("ORTHANC_RIS_HL7_RETRY_SECONDS")),
            retry_max_seconds=float(get("ORTHANC_RIS_HL7_RETRY_MAX_SECONDS")),
            send_timeout=float(get("ORTHANC_RIS_HL7_SEND_TIMEOUT")),
        )
