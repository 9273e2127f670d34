"""The check every end-to-end system runs at stop (tests/conftest.py stop_system): no
patient identifier the tests registered may appear in a log line above DEBUG."""

from tests.conftest import patient_data_in_log


def test_the_log_check_catches_a_name_and_an_mrn_and_spares_debug_and_other_words():
    log = "\n".join(
        [
            "2026-11-30 09:41:12,105 ris INFO ris_app.access: POST /api/patients 201 3.1 ms",
            "2026-11-30 09:41:12,106 ris INFO ris_app.scheduling: patient Müller registered",
            "2026-11-30 09:41:12,107 ris DEBUG ris_app.access: path /api/patients/E2E-001",
            "2026-11-30 09:41:12,108 hl7 WARNING ris_app.hl7: order E2E-001 refused",
            "2026-11-30 09:41:12,109 ris INFO ris_app.x: Does not apply",
        ]
    )
    leaks = patient_data_in_log(log, {"Müller", "E2E-001", "Doe"})
    assert [line.split(" ", 2)[2] for line in leaks] == [
        "ris INFO ris_app.scheduling: patient Müller registered",
        "hl7 WARNING ris_app.hl7: order E2E-001 refused",
    ]
