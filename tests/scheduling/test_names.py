from ris_app.model import Patient
from ris_app.scheduling.names import dicom_pn, patient_pn, pn_components, pn_of_display_name, readable


def test_dicom_pn_drops_empty_trailing_components_only():
    assert dicom_pn("Müller", "Jürgen") == "Müller^Jürgen"
    assert dicom_pn("Doe", "", "", "Dr") == "Doe^^^Dr"
    assert dicom_pn("") == ""


def test_patient_pn_and_components_are_inverse():
    p = Patient(mrn="1", family_name="Yamada", given_name="Tarou", middle_name="", name_prefix="Mr", name_suffix="")
    assert patient_pn(p) == "Yamada^Tarou^^Mr"
    assert pn_components("Yamada^Tarou^^Mr=山田^太郎") == {
        "family_name": "Yamada",
        "given_name": "Tarou",
        "middle_name": "",
        "name_prefix": "Mr",
        "name_suffix": "",
    }


def test_names_for_people_and_from_display_names():
    assert readable("Müller^Anna^Maria") == "Müller, Anna Maria"
    assert readable("") == ""
    assert pn_of_display_name("Ada Lovelace Reader") == "Reader^Ada Lovelace"
    assert pn_of_display_name("") == ""
