"""Who saw what: the audit trail of every access to and change of patient data.

trail   record(): one AuditEvent in the caller's transaction, or in one of its own
chain   the sealer (hash chain in commit order) and verify()
"""
