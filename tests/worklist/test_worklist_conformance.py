"""Conformance: dcmtk's sample worklists, imported into the RIS with `orthanc-ris
import-worklists`, answer dcmtk's sample queries and our own matching cases through
Orthanc exactly as dcmtk's wlmscpfs answers them from the same files."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import free_port
from tests.fixtures.worklist_data import (
    BEYOND_WLMSCPFS,
    ORTHANC_PROJECTS_AET,
    ORTHANC_TRIMS_SPS,
    OWN_QUERIES,
    answer_set,
    find,
    own_queries,
    project_aet,
    sample_queries,
    sample_worklists,
    wlmscpfs,
)

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    folder = sample_worklists(tmp_path_factory.mktemp("wlistdb"))
    port = free_port()
    with wlmscpfs(folder, port) as aet:
        yield folder, port, aet


@pytest.fixture(scope="module")
def imported(system, reference):
    folder, _, _ = reference
    proc = subprocess.run(
        [str(Path(sys.executable).parent / "orthanc-ris"), "import-worklists", str(folder)],
        env=system.env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "10 imported, 0 skipped" in proc.stdout
    return system


@pytest.fixture(scope="module")
def queries(tmp_path_factory):
    folder = tmp_path_factory.mktemp("queries")
    return {**sample_queries(folder / "dcmtk"), **own_queries(folder / "own")}


def test_dcmtk_ships_ten_items_and_thirteen_queries(reference, queries):
    folder, _, _ = reference
    assert len(list((folder / "OFFIS").glob("*.wl"))) == 10
    assert len([q for q in queries if q.startswith("wlistqry")]) == 13


SAME_AS_REFERENCE = [f"wlistqry{i}" for i in range(13)] + sorted(
    set(OWN_QUERIES) - set(BEYOND_WLMSCPFS) - set(ORTHANC_TRIMS_SPS)
)


@pytest.mark.parametrize("name", SAME_AS_REFERENCE)
def test_same_answers_as_wlmscpfs(imported, reference, queries, name, tmp_path):
    _, ref_port, ref_aet = reference
    expected = find(ref_port, ref_aet, queries[name], tmp_path / "ref")
    ours = find(imported.dicom_port, imported.aet, queries[name], tmp_path / "ours")
    reference_answers = answer_set(expected)
    if name in ORTHANC_PROJECTS_AET:
        reference_answers = project_aet(reference_answers, ORTHANC_PROJECTS_AET[name])
    assert answer_set(ours) == reference_answers


@pytest.mark.parametrize("name", sorted(BEYOND_WLMSCPFS))
def test_matching_keys_beyond_wlmscpfs(imported, queries, name, tmp_path):
    ours = find(imported.dicom_port, imported.aet, queries[name], tmp_path / "ours")
    assert sorted(a.AccessionNumber for a in ours) == BEYOND_WLMSCPFS[name]


@pytest.mark.parametrize("name", sorted(ORTHANC_TRIMS_SPS))
def test_combined_date_time_selects_the_same_steps(imported, reference, queries, name, tmp_path):
    _, ref_port, ref_aet = reference
    expected = sorted(a.AccessionNumber for a in find(ref_port, ref_aet, queries[name], tmp_path / "ref"))
    assert expected == ORTHANC_TRIMS_SPS[name]  # wlmscpfs matches date and time combined too
    ours = find(imported.dicom_port, imported.aet, queries[name], tmp_path / "ours")
    assert sorted(a.AccessionNumber for a in ours) == expected


def test_reference_really_discriminates(reference, queries, tmp_path):
    """Guard against a vacuous comparison: the cases select different subsets."""
    _, port, aet = reference
    counts = {
        n: len(find(port, aet, queries[n], tmp_path / n))
        for n in ("modality", "aet_second_of_two", "date_range", "date_and_time_combined", "no_match")
    }
    assert counts["no_match"] == 0
    assert all(0 < counts[n] < 10 for n in ("modality", "aet_second_of_two", "date_range"))
