"""The two ways a message leaves: e-mail over SMTP (smtplib; STARTTLS or TLS and a login
when configured) and SMS through the gateway's webhook (a JSON POST {"to", "text"}).

Each raises DeliveryError when the message did not leave; `retry` says whether trying
again later may help (a server down or busy) or not (an address the server refuses).
"""

from __future__ import annotations

import json
import smtplib
import socket
import ssl
import urllib.error
import urllib.request
from email.message import EmailMessage
from email.utils import make_msgid

from ris_app.config import Config

TIMEOUT = 15


class DeliveryError(Exception):
    def __init__(self, message: str, *, retry: bool = True) -> None:
        super().__init__(message)
        self.retry = retry


def configured(cfg: Config, channel: str) -> bool:
    return bool(cfg.smtp_host if channel == "email" else cfg.sms_webhook_url)


def send_email(cfg: Config, to: str, subject: str, text: str, language: str) -> None:
    msg = EmailMessage()
    msg["From"] = cfg.smtp_from or f"ris@{socket.getfqdn()}"
    msg["To"] = to
    msg["Subject"] = subject
    msg["Content-Language"] = language
    msg["Message-ID"] = make_msgid(domain=(cfg.smtp_from.rpartition("@")[2] or None))
    msg.set_content(text)
    context = ssl.create_default_context()
    try:
        if cfg.smtp_security == "tls":
            smtp: smtplib.SMTP = smtplib.SMTP_SSL(cfg.smtp_host, cfg.smtp_port, timeout=TIMEOUT, context=context)
        else:
            smtp = smtplib.SMTP(cfg.smtp_host, cfg.smtp_port, timeout=TIMEOUT)
        with smtp:
            if cfg.smtp_security == "starttls":
                smtp.starttls(context=context)  # refuses to go on in clear when the server cannot
            if cfg.smtp_username:
                smtp.login(cfg.smtp_username, cfg.smtp_password)
            smtp.send_message(msg)
    except smtplib.SMTPRecipientsRefused as exc:
        raise DeliveryError(f"the mail server refused the address ({_codes(exc.recipients)})", retry=False) from None
    except smtplib.SMTPResponseException as exc:
        # 5xx is permanent (RFC 5321), 4xx is "try again later".
        raise DeliveryError(f"mail server answered {exc.smtp_code}", retry=exc.smtp_code < 500) from None
    except (smtplib.SMTPException, OSError) as exc:
        raise DeliveryError(f"mail server not reachable: {type(exc).__name__}: {exc}"[:400]) from None


def _codes(recipients: dict) -> str:
    return ", ".join(str(code) for code, _ in recipients.values())


def send_sms(cfg: Config, to: str, text: str) -> None:
    body = json.dumps({"to": to, "text": text}).encode()
    request = urllib.request.Request(
        cfg.sms_webhook_url, data=body, method="POST", headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT) as response:
            response.read(4096)
    except urllib.error.HTTPError as exc:
        # 4xx (but 408/429): the gateway will not take it as sent; 5xx and the rest: later.
        retry = exc.code >= 500 or exc.code in (408, 429)
        raise DeliveryError(f"SMS gateway answered {exc.code}", retry=retry) from None
    except (urllib.error.URLError, OSError) as exc:
        raise DeliveryError(f"SMS gateway not reachable: {exc}"[:400]) from None


def deliver(cfg: Config, channel: str, to: str, subject: str, text: str, language: str) -> None:
    if channel == "email":
        send_email(cfg, to, subject, text, language)
    else:
        send_sms(cfg, to, text)
