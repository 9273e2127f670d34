"""Messages that reach the patient about an appointment: planned when a step is booked,
moved or canceled (plan), worded per language (texts), carrying signed confirm and cancel
links (links), sent by e-mail and SMS (channels) from a durable outbox (outbox)."""
