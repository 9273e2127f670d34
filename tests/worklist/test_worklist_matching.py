"""DICOM matching rules (PS3.4 C.2.2.2) as pure functions."""

import pytest

from ris_app.worklist.matching import WorklistQueryError, read_query, value_matches


@pytest.mark.parametrize(
    "query, vr, value, multi, expected",
    [
        ("CT", "CS", "CT", False, True),
        ("CT", "CS", "MR", False, False),
        ("CT\\MR", "CS", "MR", False, True),  # list matching
        ("Mül*", "PN", "Müller^Jürgen", False, True),  # wildcard
        ("M?ller*", "PN", "Muller^J", False, True),
        ("müller^jürgen", "PN", "Müller^Jürgen", False, True),  # PN ignores case
        ("*", "PN", "", False, True),
        ("CT2", "AE", "CT1\\CT2", True, True),  # multi-valued stored attribute
        ("CT3", "AE", "CT1\\CT2", True, False),
        ("20261128", "DA", "20261128", False, True),
        ("20261101-20261130", "DA", "20261128", False, True),
        ("20261129-", "DA", "20261128", False, False),
        ("-20261128", "DA", "20261128", False, True),
        ("0800-1200", "TM", "093000", False, True),
        ("0800-0900", "TM", "093000", False, False),
        ("20261128", "DA", "", False, False),
    ],
)
def test_value_matches(query, vr, value, multi, expected):
    assert value_matches(query, vr, value, multi) is expected


@pytest.mark.parametrize("payload", [b"", b"\x00garbage", b"DICM" * 10, b"\x08\x00\x05\x00" + b"\xff" * 20])
def test_garbage_queries_are_refused(payload):
    with pytest.raises(WorklistQueryError):
        read_query(payload)
