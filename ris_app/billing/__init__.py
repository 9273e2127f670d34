"""Billing: charges captured when an exam is performed, reviewed by the billing clerk and
sent to the billing system as DFT^P03 (docs/billing.md)."""
