"""Who saw what: the audit trail of every access to and change of patient data.

trail   record(): one AuditEvent in the caller's transaction, or in one of its own
chain   the sealer (hash chain in commit order) and verify()
atna    an event as a DICOM PS3.15 audit message (the table from our actions to DICOM events)
syslog  RFC 5424 messages over UDP (RFC 5426) and TLS (RFC 5425)
export  the ATNA export: sealed events, in order, to ORTHANC_RIS_AUDIT_SYSLOG, at least once
subject which patient and accession a transaction's writes concern (for its event)
query   the filters of the trail (MRN, user, action, site days, cursor), for API, page and CSV
csv_export  the trail as CSV, formula-safe
api, pages  GET /api/audit; /audit, /audit.csv, /patients/<mrn>/access (admins)
"""
