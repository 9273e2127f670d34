# orthanc-ris: `make run` sets up and starts everything; `make test` sets up and tests.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# What running the system needs. Fonts: the report PDF prints every script the RIS
# accepts (ris_app/reporting/fonts.py): DejaVu (Latin, Greek, Cyrillic, Hebrew, Arabic),
# Droid Sans Fallback (Chinese, Japanese, Korean), Loma (Thai).
RUN_DEBS := orthanc orthanc-python orthanc-dicomweb dcmtk python3-venv fonts-dejavu-core fonts-droid-fallback fonts-tlwg-loma-ttf
# OHIF's prebuilt viewer (npm @ohif/app), served by `orthanc-ris up` from build/ohif;
# scripts/install-ohif.sh installs Debian's npm only when no npm is there (a NodeSource
# nodejs ships its own npm and conflicts with Debian's).
OHIF_VERSION := 3.13.2
# What the tests add: a browser for the pages, PostgreSQL for the portability run,
# poppler (pdffonts, pdftotext) to read the report PDFs back.
TEST_DEBS := chromium chromium-driver postgresql orthanc-postgresql dicom3tools fonts-dejavu-core poppler-utils
PYTEST_ARGS ?=

.PHONY: setup setup-test run test lint format test-postgres bench clean help

help:
	@echo "make run          set up (Debian packages, .venv, database) and start the whole system"
	@echo "make test         set up, lint, and run the whole test suite"
	@echo "make lint         ruff check and ruff format --check"
	@echo "make format       ruff format and the safe ruff fixes, in place"
	@echo "make setup        set up only (idempotent)"
	@echo "make test-postgres  database-level tests against a throwaway PostgreSQL 15 cluster"
	@echo "make bench        benchmarks (see bench/RESULTS.md)"

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# Re-install only when the project definition changes.
$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test]'
	touch $@

setup:
	scripts/install-debian-packages.sh $(RUN_DEBS)
	@$(MAKE) --no-print-directory $(VENV)/.installed
	scripts/install-ohif.sh $(OHIF_VERSION)
	$(BIN)/orthanc-ris migrate

setup-test: setup
	scripts/install-debian-packages.sh $(TEST_DEBS)

run: setup
	$(BIN)/orthanc-ris up

test: setup-test
	@$(MAKE) --no-print-directory lint
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# The code that the lint step judges: the RIS, the plugin, tests, benchmarks.
LINTED := ris_app plugins tests bench

lint: $(VENV)/.installed
	$(BIN)/ruff check $(LINTED)
	$(BIN)/ruff format --check $(LINTED)

format: $(VENV)/.installed
	$(BIN)/ruff check --fix $(LINTED)
	$(BIN)/ruff format $(LINTED)

test-postgres: setup-test
	scripts/with-postgres.sh $(BIN)/python -m pytest -m "db or postgres_e2e" $(PYTEST_ARGS)

bench: setup-test
	$(BIN)/python bench/mwl.py
	$(BIN)/python bench/hl7.py
	$(BIN)/python bench/sync.py
	$(BIN)/python bench/writers.py

clean:
	rm -rf $(VENV) *.egg-info test-output
