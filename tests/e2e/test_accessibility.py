"""Every page, as each role, in Debian's chromium against the whole system with demo data:
axe-core finds no serious or critical violation (every role), no page is wider than a
390 px phone (every role), and the bar shows each role the pages it may open. The pages are
read from the app's url_map, so a new page is checked without touching this test.
Screenshots at 1280 and 390 px go to test-output/."""

from __future__ import annotations

import re
import subprocess

import pytest
from sqlalchemy import create_engine, select

from ris_app.analytics.boards import THEMES
from ris_app.config import Config
from ris_app.model import Hl7Message, Order, Patient, Report, ReportVersion, Study, User
from ris_app.web.access import access_table
from tests.conftest import TEST_OUTPUT, wait_for
from tests.e2e.test_pages_browser import ORTHANC_RIS, PASSWORD, _busy_morning, _create_user, _log_in, browser  # noqa: F401
from tests.fixtures.dicom_factory import write_series
from tests.fixtures.mwl import write_query

pytestmark = [pytest.mark.browser, pytest.mark.e2e]

ROLES = ("clerk", "technologist", "radiologist", "billing", "manager", "admin")
# GET page routes that are not pages to look at: files, redirects to other parts, JSON.
NOT_PAGES = {"reading.open_viewer", "reading.by_uid", "patients.lookup"}  # redirects; JSON for a script
SHOTS = {"pages.today", "pages.order_detail", "reading.worklist", "billing.billing_page", "users.users_page"}


@pytest.fixture(scope="module")
def demo(system, tmp_path_factory):
    """A day in each status, a study with images, a stray study, demo history (reports,
    HL7 messages), one user per role; returns the values the routes' parameters take."""
    for role in ROLES:
        _create_user(system, role, role, full_name=f"Test {role.title()}")
    _busy_morning(system)
    made = subprocess.run(
        [ORTHANC_RIS, "demo-data", "--days", "3", "--scale", "0.05", "--force"],
        env=system.env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert made.returncode == 0, made.stderr
    tmp = tmp_path_factory.mktemp("series")
    engine = create_engine(Config.from_env(system.env).database_url)
    with engine.connect() as c:
        accession = c.scalar(select(Order.accession_number).join(Order.patient).where(Patient.mrn == "BR-100"))
    files = write_series(tmp / "a", 2, patient_id="BR-100", patient_name="Schmidt^Anna", accession=accession)
    assert system.storescu(files).returncode == 0
    assert (
        system.storescu(
            write_series(tmp / "b", 1, patient_id="WHO-1", patient_name="Unknown^Walk-in", accession="TYPO1")
        ).returncode
        == 0
    )
    assert system.findscu(write_query(tmp / "q.dcm")).returncode == 0  # a worklist query to look at

    def our_study():
        with engine.connect() as c:
            return c.scalar(select(Study.id).where(Study.accession_number == accession))

    study_id = wait_for(our_study, timeout=30, step=0.5)
    with engine.connect() as c:
        version = c.execute(
            select(ReportVersion.id, Report.study_id).join(Report, Report.id == ReportVersion.report_id)
        ).first()
        study_uid = c.scalar(select(Study.study_instance_uid).where(Study.id == version.study_id))
        values = {
            "accession": accession,
            "mrn": c.scalar(select(Patient.mrn).where(Patient.mrn == "BR-100")),
            "study_id": study_id,
            "study_instance_uid": study_uid,
            "version_id": version.id,
            "message_id": c.scalar(select(Hl7Message.id)),
            "user_id": c.scalar(select(User.id)),
            "aet": "CT1",
            "code": "CTHEAD",
            "theme": next(iter(THEMES)),
        }
    engine.dispose()
    values["query_id"] = system.api("GET", "/api/worklist/queries").json()["items"][0]["id"]
    return values


def _pages(app, values: dict) -> dict[str, str]:
    """endpoint -> path of every GET page of `app`, parameters filled from the demo."""
    table = access_table(app)
    pages = {}
    for rule in app.url_map.iter_rules():
        access = table[rule.endpoint]
        if access.kind != "page" or "GET" not in rule.methods or rule.endpoint in NOT_PAGES:
            continue
        if rule.rule.endswith((".csv", ".pdf")):
            continue
        missing = set(rule.arguments) - set(values)
        assert not missing, f"{rule.rule}: the test has no value for {missing}: add one to demo()"
        pages[rule.endpoint] = re.sub(r"<(?:\w+:)?(\w+)>", lambda m: str(values[m.group(1)]), rule.rule)
    return pages


def _serious(page) -> list[str]:
    from axe_playwright_python.sync_playwright import Axe

    results = Axe().run(page)
    return [
        f"{v['id']} ({v['impact']}): {v['help']} — {[n['target'] for n in v['nodes']][:3]}"
        for v in results.response["violations"]
        if v["impact"] in ("serious", "critical")
    ]


@pytest.mark.parametrize("role", ROLES)
def test_every_page_of_each_role_is_accessible_and_fits_a_phone(system, demo, browser, app, role):  # noqa: F811
    # `app`: the route table of this code, read in the test's process (the system runs the same code).
    table = access_table(app)
    pages = {e: p for e, p in _pages(app, demo).items() if role in table[e].roles}
    assert pages, role
    problems = []
    for width, height in ((1280, 800), (390, 844)):
        context = browser.new_context(viewport={"width": width, "height": height}, locale="en-GB")
        context.set_default_timeout(15_000)
        page = context.new_page()
        page.goto(system.ris_url + "/login")
        _log_in(page, role)
        page.wait_for_url(re.compile(r"^(?!.*/login)"))
        if width == 1280:
            # The bar fits one line: the header is one line high.
            assert page.evaluate("document.querySelector('header.top').offsetHeight") < 60, role
        for endpoint, path in sorted(pages.items()):
            answer = page.goto(system.ris_url + path)
            if answer.status >= 400:
                problems.append(f"{path} answered {answer.status} to {role}")
                continue
            if width == 1280:  # every role: each sees its own buttons and forms
                problems += [f"{path} ({role}): {v}" for v in _serious(page)]
            if width == 390:
                scroll = page.evaluate("document.scrollingElement.scrollWidth")
                if scroll > 390:
                    problems.append(f"{path} ({role}) is {scroll} px wide at 390 px")
            if endpoint in SHOTS:
                TEST_OUTPUT.mkdir(exist_ok=True)
                page.screenshot(path=str(TEST_OUTPUT / f"a11y-{role}-{endpoint}-{width}.png"), full_page=True)
        context.close()
    assert not problems, "\n".join(problems)
