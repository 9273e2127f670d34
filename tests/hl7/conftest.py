"""The HL7 service and test-EHR fixtures for every HL7 test module."""

from tests.fixtures.hl7_service import hl7, receiver

__all__ = ["hl7", "receiver"]
