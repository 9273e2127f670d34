"""Analytics: what the department's recorded history says. Turnaround per stage of an
exam's journey, room utilisation, no-show and cancellation rates, the unread backlog,
HL7 and sync health, learned exam durations, and a volume forecast against capacity;
`demo` fills a fresh installation with a plausible history to look at.

Read-only queries over what scheduling, tracking, reporting and the HL7 interface
record; no Flask here (pages.py and api.py speak HTTP)."""
