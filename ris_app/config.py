"""Settings, read from environment variables with documented defaults.

One table (SETTINGS) is the single place that names every variable, its default and what
it means; docs/configuration.md is written from the same list.

Why this long: that table is one line-group per setting (some sixty of them) and belongs
in one place; the code around it is short.
"""

from __future__ import annotations

import os
import re
import secrets
from dataclasses import dataclass, field
from pathlib import Path

from ris_app.clock import zone_named

REPO_ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Setting:
    env: str
    default: str
    help: str


SETTINGS: tuple[Setting, ...] = (
    Setting(
        "ORTHANC_RIS_HOME", "./data", "Data folder: RIS database, Orthanc storage and index, generated config, secrets."
    ),
    Setting(
        "ORTHANC_RIS_DATABASE_URL",
        "",
        "SQLAlchemy URL of the RIS database; empty means SQLite at $ORTHANC_RIS_HOME/ris.sqlite3. PostgreSQL: postgresql+psycopg://user:pw@host/db.",
    ),
    Setting("ORTHANC_RIS_HTTP_HOST", "127.0.0.1", "Address the RIS web server binds to."),
    Setting("ORTHANC_RIS_HTTP_PORT", "5000", "Port of the RIS web pages and REST API."),
    Setting("ORTHANC_RIS_WORKERS", "2", "RIS web server worker processes."),
    Setting("ORTHANC_RIS_ORTHANC_HTTP_PORT", "8042", "Port of Orthanc's REST API and Orthanc Explorer."),
    Setting(
        "ORTHANC_RIS_ORTHANC_URL",
        "",
        "URL the RIS uses to reach Orthanc; empty means http://127.0.0.1:$ORTHANC_RIS_ORTHANC_HTTP_PORT.",
    ),
    Setting(
        "ORTHANC_RIS_ORTHANC_PUBLIC_URL",
        "",
        "Orthanc's address as users' browsers reach it (Explorer links); empty means $ORTHANC_RIS_ORTHANC_URL.",
    ),
    Setting(
        "ORTHANC_RIS_ORTHANC_USERNAME",
        "orthanc-ris",
        "Orthanc's service account: the user the RIS, the sync worker and the viewer proxy log in to Orthanc's REST API as (declared in Orthanc's RegisteredUsers by `orthanc-ris up`).",
    ),
    Setting(
        "ORTHANC_RIS_ORTHANC_PASSWORD",
        "",
        "That account's password; empty means one is generated into $ORTHANC_RIS_HOME/secrets/orthanc-password.",
    ),
    Setting("ORTHANC_RIS_DICOM_PORT", "4242", "Orthanc's DICOM port (C-STORE, C-FIND worklist)."),
    Setting("ORTHANC_RIS_AET", "ORTHANC", "Orthanc's DICOM AE title."),
    Setting(
        "ORTHANC_RIS_DICOM_ALLOW_UNKNOWN_AE",
        "false",
        "Let any calling AE store, query the worklist and send MPPS (a lab or a test only); false means only the AE titles of the stations table.",
    ),
    Setting(
        "ORTHANC_RIS_API_TOKEN",
        "",
        "Admin bearer token of the REST API, for bootstrap and scripts (named tokens: `orthanc-ris create-token`); empty means one is generated into $ORTHANC_RIS_HOME/secrets/api-token.",
    ),
    Setting(
        "ORTHANC_RIS_PLUGIN_TOKEN",
        "",
        "Bearer token of the Orthanc plugin (role plugin: only /api/internal/*); empty means one is generated into $ORTHANC_RIS_HOME/secrets/plugin-token.",
    ),
    Setting(
        "ORTHANC_RIS_SECRET_KEY",
        "",
        "Key signing login sessions; empty means one is generated into $ORTHANC_RIS_HOME/secrets/secret-key.",
    ),
    Setting(
        "ORTHANC_RIS_SESSION_IDLE_MINUTES",
        "30",
        "Minutes without a request after which a page login ends.",
    ),
    Setting(
        "ORTHANC_RIS_SESSION_MAX_HOURS",
        "12",
        "Hours after which a page login ends however active it is.",
    ),
    Setting(
        "ORTHANC_RIS_RIS_URL",
        "",
        "URL the Orthanc plugin uses to reach the RIS; empty means http://127.0.0.1:$ORTHANC_RIS_HTTP_PORT.",
    ),
    Setting(
        "ORTHANC_RIS_STABLE_AGE",
        "60",
        "Seconds without new instances before Orthanc calls a study stable (images complete).",
    ),
    Setting(
        "ORTHANC_RIS_ORTHANC_REMOTE_ACCESS",
        "false",
        "Let hosts other than this one reach Orthanc's HTTP port (enable Orthanc authentication first).",
    ),
    Setting(
        "ORTHANC_RIS_ORTHANC_INDEX_URL",
        "",
        "PostgreSQL URI for Orthanc's index (postgresql://user:pw@host:5432/db, needs the orthanc-postgresql package); empty means Orthanc's SQLite index in the data folder. Several Orthanc processes may share one.",
    ),
    Setting("ORTHANC_RIS_ORTHANC_BINARY", "Orthanc", "Orthanc executable."),
    Setting(
        "ORTHANC_RIS_ORTHANC_PLUGINS",
        "/usr/share/orthanc/plugins",
        "Folder holding libOrthancPython.so and libOrthancDicomWeb.so.",
    ),
    Setting(
        "ORTHANC_RIS_WORKLIST_STATUSES",
        "SCHEDULED,ARRIVED,READY",
        "Step statuses answered by worklist queries that do not ask for a status.",
    ),
    Setting("ORTHANC_RIS_WORKLIST_LIMIT", "500", "Most answers to one worklist query; more are marked incomplete."),
    Setting(
        "ORTHANC_RIS_ACCESSION_PREFIX", "RIS", "Prefix of generated accession numbers (total at most 16 characters)."
    ),
    Setting("ORTHANC_RIS_UID_ROOT", "", "UID root for generated StudyInstanceUIDs; empty means 2.25 (UUID-derived)."),
    Setting(
        "ORTHANC_RIS_VIEWER_PORT",
        "3000",
        "Port of the image viewer (OHIF) and the Orthanc Explorer proxy; both need a RIS login.",
    ),
    Setting(
        "ORTHANC_RIS_VIEWER_URL",
        "",
        "URL browsers use to reach the viewer; empty means the RIS page's host name with $ORTHANC_RIS_VIEWER_PORT.",
    ),
    Setting(
        "ORTHANC_RIS_OHIF_DIR",
        "",
        "Folder of OHIF's prebuilt viewer (dist/ of npm @ohif/app); empty means build/ohif/dist, installed by `make setup`.",
    ),
    Setting(
        "ORTHANC_RIS_OHIF_URL",
        "",
        "An OHIF served elsewhere, e.g. Orthanc's OHIF plugin under Docker (http://host:8042/ohif); when set, viewer links go to it and to $ORTHANC_RIS_ORTHANC_PUBLIC_URL (Orthanc's own login) instead of the viewer part.",
    ),
    Setting("ORTHANC_RIS_INSTITUTION", "", "Department name printed at the top of report PDFs."),
    Setting(
        "ORTHANC_RIS_PUBLIC_URL",
        "",
        "The RIS's address as patients reach it: the base of the confirm and cancel links in reminders; empty means $ORTHANC_RIS_RIS_URL.",
    ),
    Setting(
        "ORTHANC_RIS_REMINDER_LEAD_HOURS",
        "48,2",
        "Hours before an appointment at which the patient is reminded, comma-separated; 0 sends no reminders (confirmations, reschedules and cancellations are still sent).",
    ),
    Setting(
        "ORTHANC_RIS_REMINDER_LANGUAGE",
        "en",
        "Language of patient messages when the patient has none or no template exists in theirs (templates: en, fr, de).",
    ),
    Setting("ORTHANC_RIS_SMTP_HOST", "", "Mail server for patient e-mails; empty sends no e-mail."),
    Setting("ORTHANC_RIS_SMTP_PORT", "25", "Port of ORTHANC_RIS_SMTP_HOST (587 for STARTTLS, 465 for TLS)."),
    Setting("ORTHANC_RIS_SMTP_FROM", "", "Sender address of patient e-mails; empty means ris@<host name>."),
    Setting(
        "ORTHANC_RIS_SMTP_SECURITY",
        "none",
        "none, starttls (upgrade the plain connection; refused if the server cannot) or tls (TLS from the first byte).",
    ),
    Setting("ORTHANC_RIS_SMTP_USERNAME", "", "Login on the mail server; empty: no login."),
    Setting("ORTHANC_RIS_SMTP_PASSWORD", "", "Password of ORTHANC_RIS_SMTP_USERNAME."),
    Setting(
        "ORTHANC_RIS_SMS_WEBHOOK_URL",
        "",
        'SMS gateway: each text is POSTed here as JSON {"to": phone, "text": message}; any 2xx is success. Empty sends no SMS.',
    ),
    Setting(
        "ORTHANC_RIS_NO_SHOW_GRACE_MINUTES",
        "30",
        "Minutes after the end of a booked slot at which an exam still not checked in is marked a no-show (by the sync worker; only on stations with opening hours).",
    ),
    Setting(
        "ORTHANC_RIS_SHARE_MAX_DAYS",
        "30",
        "Longest a second-opinion share link may stay valid, in days (a link is valid 7 days unless its creator asks for fewer or more).",
    ),
    Setting(
        "ORTHANC_RIS_TIMEZONE",
        "",
        "The department's time zone, an IANA name such as Europe/Paris: scheduled times in DICOM, HL7, the pages and the API are its wall-clock time. Empty means the server's zone. Stored times are UTC whatever it is.",
    ),
    # HL7 v2 (ris_app/hl7, docs/hl7-conformance.md)
    Setting(
        "ORTHANC_RIS_HL7_HOST",
        "127.0.0.1",
        "Address the HL7 MLLP listener binds to (0.0.0.0 to accept the EHR from other hosts).",
    ),
    Setting("ORTHANC_RIS_HL7_PORT", "2575", "Port of the HL7 MLLP listener (ADT, ORM, OMI in; ACK out)."),
    Setting(
        "ORTHANC_RIS_HL7_MAX_MESSAGE_BYTES",
        "1048576",
        "Largest inbound HL7 message; larger frames get AR and the connection is closed.",
    ),
    Setting(
        "ORTHANC_RIS_HL7_READ_TIMEOUT",
        "30",
        "Seconds a started MLLP frame may take to complete before it is refused as truncated.",
    ),
    Setting(
        "ORTHANC_RIS_HL7_IDLE_TIMEOUT",
        "600",
        "Seconds an MLLP connection may stay idle between messages before it is closed.",
    ),
    Setting("ORTHANC_RIS_HL7_MAX_CONNECTIONS", "64", "Most simultaneous MLLP connections; more are closed at once."),
    Setting(
        "ORTHANC_RIS_HL7_DEFAULT_CHARSET",
        "UNICODE UTF-8",
        "Character set of inbound messages whose MSH-18 is empty (HL7 table 0211 name, e.g. 8859/1).",
    ),
    Setting(
        "ORTHANC_RIS_HL7_APPLICATION", "ORTHANC_RIS", "Our MSH-3 (sending application) in ACKs and outbound messages."
    ),
    Setting("ORTHANC_RIS_HL7_FACILITY", "RADIOLOGY", "Our MSH-4 (sending facility) in ACKs and outbound messages."),
    Setting(
        "ORTHANC_RIS_HL7_STATION_RULES",
        "",
        "Station for orders naming none: 'procedure:MRKNEE=MR2;modality:CT=CT1\\CT2'. Unruled modalities get every station of that modality; none leaves the AE title empty (any scanner finds it).",
    ),
    Setting(
        "ORTHANC_RIS_HL7_DESTINATIONS",
        "",
        "Peers receiving status (ORM/OMG) and result (ORU) messages: 'EHR=host:port;OTHER=host:port'. Empty sends nothing.",
    ),
    Setting(
        "ORTHANC_RIS_HL7_SCHEDULING_DESTINATIONS",
        "",
        "Peers receiving appointment messages (SIU^S12 booked, S13 moved, S15 canceled, S26 no-show), same form as ORTHANC_RIS_HL7_DESTINATIONS. Empty sends none.",
    ),
    Setting(
        "ORTHANC_RIS_HL7_STATUS_MESSAGE", "ORM^O01", "Outbound status message: ORM^O01 (HL7 2.3.1) or OMG^O19 (2.5.1)."
    ),
    Setting(
        "ORTHANC_RIS_HL7_RETRY_SECONDS",
        "2",
        "First delay before re-sending an outbound message; doubles on each failure.",
    ),
    Setting(
        "ORTHANC_RIS_HL7_RETRY_MAX_SECONDS",
        "300",
        "Longest delay between re-sends (outbound messages are retried until acknowledged).",
    ),
    Setting("ORTHANC_RIS_HL7_SEND_TIMEOUT", "10", "Seconds to wait for a peer's ACK to an outbound message."),
    Setting(
        "ORTHANC_RIS_HL7_ALLOW",
        "",
        "Addresses or networks allowed to connect to the MLLP listener, comma-separated ('10.1.2.3, 10.20.0.0/16'); others are closed unread and logged. Empty allows any.",
    ),
    Setting(
        "ORTHANC_RIS_HL7_TLS_CERT",
        "",
        "PEM certificate (chain) of the MLLP listener; with ORTHANC_RIS_HL7_TLS_KEY the listener speaks only MLLP over TLS (1.2 or later). Empty: plain TCP. Also shown to tls:// destinations that ask for a client certificate.",
    ),
    Setting("ORTHANC_RIS_HL7_TLS_KEY", "", "PEM private key of ORTHANC_RIS_HL7_TLS_CERT."),
    Setting(
        "ORTHANC_RIS_HL7_TLS_CLIENT_CA",
        "",
        "PEM CA certificate(s): when set, MLLP peers must show a client certificate signed by one of them (mutual TLS).",
    ),
    Setting(
        "ORTHANC_RIS_HL7_TLS_PEER_CA",
        "",
        "PEM CA certificate(s) that tls:// destinations' certificates are checked against; empty means the system's CAs.",
    ),
    # Image tracking (docs/tracking.md)
    Setting("ORTHANC_RIS_MPPS_PORT", "11112", "Port of the RIS's MPPS SCP (modalities send N-CREATE/N-SET here)."),
    Setting("ORTHANC_RIS_MPPS_AET", "RISMPPS", "AE title of the RIS's MPPS SCP."),
    Setting(
        "ORTHANC_RIS_MPPS_HOST",
        "127.0.0.1",
        "Address the MPPS SCP binds to (0.0.0.0 to accept modalities from other hosts).",
    ),
    Setting(
        "ORTHANC_RIS_RECONCILE_SECONDS",
        "300",
        "Seconds between two comparisons of Orthanc's studies with the RIS (repairs drift).",
    ),
    Setting(
        "ORTHANC_RIS_COERCE_ON_STABLE",
        "false",
        "Correct stable studies linked to an order whose patient or accession differ from the RIS (in Orthanc, UIDs kept).",
    ),
    Setting("ORTHANC_RIS_LOG_LEVEL", "INFO", "Log level; patient data is only logged at DEBUG."),
    # ATNA export of the audit trail (docs/security.md)
    Setting(
        "ORTHANC_RIS_AUDIT_SYSLOG",
        "",
        "Audit record repository the audit events go to as DICOM audit messages in syslog: udp://host:port (RFC 5426) or tls://host:port (RFC 5425). Empty: no export.",
    ),
    Setting(
        "ORTHANC_RIS_AUDIT_SYSLOG_CA",
        "",
        "PEM CA certificate(s) the tls:// repository's certificate is checked against; empty means the system's CAs.",
    ),
    Setting(
        "ORTHANC_RIS_AUDIT_SYSLOG_CERT",
        "",
        "PEM certificate shown to a tls:// repository that asks for one (ATNA node authentication); empty: none.",
    ),
    Setting("ORTHANC_RIS_AUDIT_SYSLOG_KEY", "", "PEM private key of ORTHANC_RIS_AUDIT_SYSLOG_CERT."),
    Setting(
        "ORTHANC_RIS_AUDIT_SOURCE_ID",
        "",
        "AuditSourceID of the audit messages; empty means this machine's host name.",
    ),
    # Billing (docs/billing.md)
    Setting(
        "ORTHANC_RIS_BILLING_CODE_SYSTEM",
        "CPT",
        "Code system of the billing codes the default catalog is seeded with and new catalog rows get unless named (CPT, HCPCS, a national schedule).",
    ),
    Setting(
        "ORTHANC_RIS_BILLING_DISCONTINUED",
        "none",
        "What a discontinued exam is charged: none, or partial (its procedure and technical rows with modifier 53, no add-ons). A canceled exam is never charged.",
    ),
    Setting(
        "ORTHANC_RIS_BILLING_SEND",
        "review",
        "review: new charges wait for the billing clerk to send them; auto: each charge is sent (DFT^P03) as soon as it is captured.",
    ),
    Setting(
        "ORTHANC_RIS_HL7_FINANCIAL_DESTINATIONS",
        "",
        "Billing systems receiving charges as DFT^P03: 'BILLING=host:port' (tls://host:port for MLLP over TLS), ';'-separated. Empty: charges are not sent.",
    ),
    Setting(
        "ORTHANC_RIS_HL7_FINANCIAL_VERSIONS",
        "",
        "HL7 version of the DFT^P03 per financial destination: 'BILLING=2.3.1;OTHER=2.5.1'. A destination not named gets 2.5.1.",
    ),
    # Registration and safety checks (docs/registration.md)
    Setting(
        "ORTHANC_RIS_SAFETY_EGFR_MIN",
        "30",
        "eGFR (mL/min/1.73m2) below which a contrast procedure is blocked until a radiologist overrides it.",
    ),
    Setting(
        "ORTHANC_RIS_SAFETY_EGFR_MAX_AGE_DAYS",
        "90",
        "Oldest eGFR (days) a contrast procedure may rely on; older or none gives a warning.",
    ),
    Setting(
        "ORTHANC_RIS_HL7_MRN_TYPE_CODES",
        "MR",
        "Identifier type codes (PID-3.5, comma-separated) that mark the MRN among PID-3's repetitions; others are kept as other identifiers.",
    ),
    Setting(
        "ORTHANC_RIS_HL7_MRN_AUTHORITY",
        "",
        "Assigning authority (PID-3.4) the MRN must carry when several repetitions are typed MR; empty accepts any.",
    ),
    Setting(
        "ORTHANC_RIS_MRN_CASE_INSENSITIVE",
        "true",
        "Compare MRNs without case (p2001 and P2001 are one patient) in every lookup: pages, API, HL7, worklist, import; the MRN is kept as first written.",
    ),
    Setting(
        "ORTHANC_RIS_HL7_CREATININE_CODES",
        "2160-0",
        "OBX-3 codes (LOINC, comma-separated) of ORU^R01 results stored as serum creatinine.",
    ),
    Setting(
        "ORTHANC_RIS_HL7_EGFR_CODES",
        "33914-3,62238-1,98979-8",
        "OBX-3 codes (LOINC, comma-separated) of ORU^R01 results stored as eGFR.",
    ),
    Setting(
        "ORTHANC_RIS_READ_TARGET_MINUTES",
        "STAT=60,HIGH=240,ROUTINE=2880",
        "Reading targets per order priority, PRIORITY=minutes comma-separated: the analytics backlog counts unread studies older than their target.",
    ),
)

_DEFAULTS = {s.env: s.default for s in SETTINGS}
_SECRET_WORDS = ("TOKEN", "SECRET", "PASSWORD", "KEY")
_URL_PASSWORD = re.compile(r"(://[^/@:]*:)[^/@]*@")


def redact(name: str, value: str) -> str:
    """A setting's value fit to print: secrets become (set) / (generated or empty), and a
    password inside a URL (database, Orthanc index) becomes ***."""
    if any(word in name for word in _SECRET_WORDS):
        return "(set)" if value else "(generated or empty)"
    return _URL_PASSWORD.sub(r"\1***@", value)


def lead_hours(text: str) -> tuple[int, ...]:
    """ORTHANC_RIS_REMINDER_LEAD_HOURS: "48,2" -> (48, 2), longest first; 0 and blanks dropped."""
    try:
        hours = {int(part) for part in text.split(",") if part.strip()}
    except ValueError:
        raise ValueError("ORTHANC_RIS_REMINDER_LEAD_HOURS: whole hours separated by commas, such as 48,2") from None
    if any(h < 0 for h in hours):
        raise ValueError("ORTHANC_RIS_REMINDER_LEAD_HOURS: hours before the appointment cannot be negative")
    return tuple(sorted((h for h in hours if h), reverse=True))


def _minutes(text: str) -> int:
    """ORTHANC_RIS_NO_SHOW_GRACE_MINUTES: whole minutes, 0 or more."""
    try:
        minutes = int(text)
    except ValueError:
        raise ValueError("ORTHANC_RIS_NO_SHOW_GRACE_MINUTES: whole minutes, such as 30") from None
    if minutes < 0:
        raise ValueError("ORTHANC_RIS_NO_SHOW_GRACE_MINUTES: minutes after the slot cannot be negative")
    return minutes


def read_targets(text: str) -> dict[str, int]:
    """ORTHANC_RIS_READ_TARGET_MINUTES: "STAT=60,ROUTINE=2880" -> {"STAT": 60, "ROUTINE": 2880}."""
    out: dict[str, int] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        name, _, minutes = part.partition("=")
        if not name.strip() or not minutes.strip().isdigit() or int(minutes) < 1:
            raise ValueError(
                "ORTHANC_RIS_READ_TARGET_MINUTES: PRIORITY=minutes separated by commas, such as STAT=60,ROUTINE=2880"
            )
        out[name.strip().upper()] = int(minutes)
    return out


def _get(env: dict[str, str], name: str) -> str:
    return env.get(name, _DEFAULTS[name]) or _DEFAULTS[name]


def _read_or_create_secret(path: Path) -> str:
    if path.exists():
        value = path.read_text().strip()
        if not value:
            # An empty secret would match an empty credential: refuse to start instead.
            raise ValueError(f"{path} is empty: delete it to have a new secret generated, or write one into it")
        return value
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    value = secrets.token_urlsafe(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(value + "\n")
    return value


@dataclass(frozen=True)
class Config:
    home: Path
    database_url: str
    http_host: str
    http_port: int
    workers: int
    orthanc_http_port: int
    orthanc_url: str
    orthanc_public_url: str
    orthanc_username: str
    orthanc_password: str
    dicom_port: int
    aet: str
    api_token: str
    secret_key: str
    ris_url: str
    stable_age: int
    orthanc_remote_access: bool
    orthanc_index_url: str
    orthanc_binary: str
    orthanc_plugins: Path
    worklist_statuses: tuple[str, ...]
    worklist_limit: int
    accession_prefix: str
    uid_root: str
    log_level: str
    mpps_port: int = 11112
    mpps_aet: str = "RISMPPS"
    mpps_host: str = "127.0.0.1"
    dicom_allow_unknown_ae: bool = False
    reconcile_seconds: float = 300.0
    coerce_on_stable: bool = False
    extra: dict[str, object] = field(default_factory=dict)
    viewer_port: int = 3000
    viewer_url: str = ""
    ohif_dir: Path = REPO_ROOT / "build" / "ohif" / "dist"
    institution: str = ""
    ohif_url: str = ""
    timezone: str = ""  # IANA name; "" is the server's zone (ris_app.clock.site_zone)
    plugin_token: str = ""
    session_idle_minutes: int = 30
    session_max_hours: int = 12
    audit_syslog: str = ""
    audit_syslog_ca: str = ""
    audit_syslog_cert: str = ""
    audit_syslog_key: str = ""
    audit_source_id: str = ""
    share_max_days: int = 30
    public_url: str = ""
    reminder_lead_hours: tuple[int, ...] = (48, 2)
    reminder_language: str = "en"
    smtp_host: str = ""
    smtp_port: int = 25
    smtp_from: str = ""
    smtp_security: str = "none"
    smtp_username: str = ""
    smtp_password: str = ""
    sms_webhook_url: str = ""
    no_show_grace_minutes: int = 30
    read_target_minutes: dict[str, int] = field(default_factory=dict)

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None, *, create_secrets: bool = True) -> Config:
        """Build the configuration from environment variables (os.environ by default)."""
        env = dict(os.environ if env is None else env)
        home = Path(_get(env, "ORTHANC_RIS_HOME")).expanduser().resolve()
        db_url = _get(env, "ORTHANC_RIS_DATABASE_URL") or f"sqlite:///{home / 'ris.sqlite3'}"
        http_port = int(_get(env, "ORTHANC_RIS_HTTP_PORT"))
        orthanc_http_port = int(_get(env, "ORTHANC_RIS_ORTHANC_HTTP_PORT"))
        secrets_dir = home / "secrets"
        token = _get(env, "ORTHANC_RIS_API_TOKEN")
        if not token and create_secrets:
            token = _read_or_create_secret(secrets_dir / "api-token")
        plugin_token = _get(env, "ORTHANC_RIS_PLUGIN_TOKEN")
        if not plugin_token and create_secrets:
            plugin_token = _read_or_create_secret(secrets_dir / "plugin-token")
        orthanc_password = _get(env, "ORTHANC_RIS_ORTHANC_PASSWORD")
        if not orthanc_password and create_secrets:
            orthanc_password = _read_or_create_secret(secrets_dir / "orthanc-password")
        secret_key = _get(env, "ORTHANC_RIS_SECRET_KEY")
        if not secret_key and create_secrets:
            secret_key = _read_or_create_secret(secrets_dir / "secret-key")
        prefix = _get(env, "ORTHANC_RIS_ACCESSION_PREFIX")
        if len(prefix) > 8:
            raise ValueError("ORTHANC_RIS_ACCESSION_PREFIX: at most 8 characters (accession numbers are SH, 16)")
        timezone = _get(env, "ORTHANC_RIS_TIMEZONE").strip()
        zone_named(timezone)  # refuse an unknown zone at start, not on the first scheduled time
        smtp_security = _get(env, "ORTHANC_RIS_SMTP_SECURITY").strip().lower()
        if smtp_security not in ("none", "starttls", "tls"):
            raise ValueError("ORTHANC_RIS_SMTP_SECURITY: none, starttls or tls")
        audit_syslog = _get(env, "ORTHANC_RIS_AUDIT_SYSLOG").strip()
        if audit_syslog and not re.fullmatch(r"(udp|tls)://[^:/\s]+:\d+", audit_syslog):
            raise ValueError("ORTHANC_RIS_AUDIT_SYSLOG: udp://host:port or tls://host:port")
        return cls(
            home=home,
            database_url=db_url,
            http_host=_get(env, "ORTHANC_RIS_HTTP_HOST"),
            http_port=http_port,
            workers=int(_get(env, "ORTHANC_RIS_WORKERS")),
            orthanc_http_port=orthanc_http_port,
            orthanc_url=(_get(env, "ORTHANC_RIS_ORTHANC_URL") or f"http://127.0.0.1:{orthanc_http_port}").rstrip("/"),
            orthanc_public_url=(
                _get(env, "ORTHANC_RIS_ORTHANC_PUBLIC_URL")
                or _get(env, "ORTHANC_RIS_ORTHANC_URL")
                or f"http://127.0.0.1:{orthanc_http_port}"
            ).rstrip("/"),
            orthanc_username=_get(env, "ORTHANC_RIS_ORTHANC_USERNAME"),
            orthanc_password=orthanc_password,
            dicom_port=int(_get(env, "ORTHANC_RIS_DICOM_PORT")),
            aet=_get(env, "ORTHANC_RIS_AET"),
            api_token=token,
            secret_key=secret_key,
            ris_url=(_get(env, "ORTHANC_RIS_RIS_URL") or f"http://127.0.0.1:{http_port}").rstrip("/"),
            stable_age=int(_get(env, "ORTHANC_RIS_STABLE_AGE")),
            orthanc_remote_access=_get(env, "ORTHANC_RIS_ORTHANC_REMOTE_ACCESS").lower() in ("1", "true", "yes"),
            orthanc_index_url=_get(env, "ORTHANC_RIS_ORTHANC_INDEX_URL"),
            orthanc_binary=_get(env, "ORTHANC_RIS_ORTHANC_BINARY"),
            orthanc_plugins=Path(_get(env, "ORTHANC_RIS_ORTHANC_PLUGINS")),
            worklist_statuses=tuple(
                s.strip().upper() for s in _get(env, "ORTHANC_RIS_WORKLIST_STATUSES").split(",") if s.strip()
            ),
            worklist_limit=int(_get(env, "ORTHANC_RIS_WORKLIST_LIMIT")),
            accession_prefix=prefix,
            uid_root=_get(env, "ORTHANC_RIS_UID_ROOT"),
            log_level=_get(env, "ORTHANC_RIS_LOG_LEVEL").upper(),
            viewer_port=int(_get(env, "ORTHANC_RIS_VIEWER_PORT")),
            viewer_url=_get(env, "ORTHANC_RIS_VIEWER_URL").rstrip("/"),
            ohif_dir=Path(_get(env, "ORTHANC_RIS_OHIF_DIR") or REPO_ROOT / "build" / "ohif" / "dist"),
            institution=_get(env, "ORTHANC_RIS_INSTITUTION"),
            ohif_url=_get(env, "ORTHANC_RIS_OHIF_URL").rstrip("/"),
            timezone=timezone,
            mpps_port=int(_get(env, "ORTHANC_RIS_MPPS_PORT")),
            mpps_aet=_get(env, "ORTHANC_RIS_MPPS_AET"),
            mpps_host=_get(env, "ORTHANC_RIS_MPPS_HOST"),
            reconcile_seconds=float(_get(env, "ORTHANC_RIS_RECONCILE_SECONDS")),
            coerce_on_stable=_get(env, "ORTHANC_RIS_COERCE_ON_STABLE").lower() in ("1", "true", "yes"),
            plugin_token=plugin_token,
            session_idle_minutes=int(_get(env, "ORTHANC_RIS_SESSION_IDLE_MINUTES")),
            session_max_hours=int(_get(env, "ORTHANC_RIS_SESSION_MAX_HOURS")),
            dicom_allow_unknown_ae=_get(env, "ORTHANC_RIS_DICOM_ALLOW_UNKNOWN_AE").lower() in ("1", "true", "yes"),
            audit_syslog=audit_syslog,
            audit_syslog_ca=_get(env, "ORTHANC_RIS_AUDIT_SYSLOG_CA"),
            audit_syslog_cert=_get(env, "ORTHANC_RIS_AUDIT_SYSLOG_CERT"),
            audit_syslog_key=_get(env, "ORTHANC_RIS_AUDIT_SYSLOG_KEY"),
            audit_source_id=_get(env, "ORTHANC_RIS_AUDIT_SOURCE_ID"),
            share_max_days=int(_get(env, "ORTHANC_RIS_SHARE_MAX_DAYS")),
            public_url=(
                _get(env, "ORTHANC_RIS_PUBLIC_URL")
                or _get(env, "ORTHANC_RIS_RIS_URL")
                or f"http://127.0.0.1:{http_port}"
            ).rstrip("/"),
            reminder_lead_hours=lead_hours(_get(env, "ORTHANC_RIS_REMINDER_LEAD_HOURS")),
            reminder_language=_get(env, "ORTHANC_RIS_REMINDER_LANGUAGE").strip().lower(),
            smtp_host=_get(env, "ORTHANC_RIS_SMTP_HOST").strip(),
            smtp_port=int(_get(env, "ORTHANC_RIS_SMTP_PORT")),
            smtp_from=_get(env, "ORTHANC_RIS_SMTP_FROM").strip(),
            smtp_security=smtp_security,
            smtp_username=_get(env, "ORTHANC_RIS_SMTP_USERNAME"),
            smtp_password=_get(env, "ORTHANC_RIS_SMTP_PASSWORD"),
            sms_webhook_url=_get(env, "ORTHANC_RIS_SMS_WEBHOOK_URL").strip(),
            no_show_grace_minutes=_minutes(_get(env, "ORTHANC_RIS_NO_SHOW_GRACE_MINUTES")),
            read_target_minutes=read_targets(_get(env, "ORTHANC_RIS_READ_TARGET_MINUTES")),
        )
