"""Worklist C-FIND answered from the RIS.

Orthanc serialises worklist callbacks, so this path does one keep-alive HTTP round trip
and hands the RIS's prebuilt items back; no DICOM is built here.
"""

from __future__ import annotations

import logging
import time

from .ris_client import RisClient

log = logging.getLogger("risbridge.mwl")


class WorklistHandler:
    def __init__(self, ris: RisClient) -> None:
        self.ris = ris

    def __call__(self, answers, query, issuer_aet: str, called_aet: str) -> None:
        started = time.perf_counter()
        items, incomplete = self.ris.find_worklist(query.WorklistGetDicomQuery(), issuer_aet, called_aet)
        for item in items:
            answers.WorklistAddAnswer(query, item)
        if incomplete:
            answers.WorklistMarkIncomplete()
        log.info(
            "worklist C-FIND from %s: %d answer(s)%s in %.1f ms",
            issuer_aet.strip(),
            len(items),
            " (incomplete)" if incomplete else "",
            (time.perf_counter() - started) * 1000,
        )
