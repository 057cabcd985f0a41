# One command each, on a fresh machine (Debian, Python >= 3.11):
#   make test    install everything the tests need, lint (make lint), then run them
#   make test-fast  the edit loop: lint and the unit tests, no book build, no browser (a few minutes)
#   make lint    ruff: lint and format check of bnpaper/, tests/ and the chapters' code cells
#   make book    install what the book needs, execute every chapter (quick profile), build both editions
#   make bench   BN forward+backward timings against torch's native batch_norm (CPU)
#   make pdf     print both editions of the last book build to _build/pdf/ (headless Chromium)
#   make release pack the build into _build/release/bnpaper-<version>-<profile>.tar.gz with SHA256SUMS
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
PROFILE ?= quick
DEVICE  ?= auto
STAMP  := $(VENV)/.installed

.PHONY: test test-fast lint book paper pdf release bench system-deps clean

$(STAMP): pyproject.toml requirements-lock.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements-lock.txt
	$(PY) -m pip install -q --no-deps --no-build-isolation -e .
	touch $@

# Debian packages: Chromium for the browser tests and the PDFs, Noto fonts for Arabic pages,
# poppler-utils for the PDF tests. Needs root.
system-deps:
	@if ! command -v chromium >/dev/null 2>&1 || ! command -v pdfinfo >/dev/null 2>&1; then \
	  apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium fonts-noto-core poppler-utils; \
	fi

test: $(STAMP) lint system-deps
	$(PY) -m pytest -q

# Everything but the smoke build of the book, the browser and the PDFs (tests/test_book.py,
# test_browser.py, test_publish.py): the unit tests, the ledger, the layers, the progress path.
test-fast: $(STAMP) lint
	$(PY) -m pytest -q --ignore=tests/test_book.py --ignore=tests/test_browser.py --ignore=tests/test_publish.py

# The chapters' code cells: jupytext hands each chapter to ruff as a temporary .ipynb, of which ruff
# checks the code cells only, one cell at a time (so imports after the parameters cell are fine).
# -o puts jupytext's converted copy in a scratch folder: without it jupytext rewrites the chapter.
RUFF      := $(VENV)/bin/ruff
CHAPTERS  := $(wildcard notebooks/[0-9]*.md)

lint: $(STAMP)
	$(RUFF) check bnpaper tests
	$(RUFF) format --check bnpaper tests
	@scratch=$$(mktemp -d); status=0; \
	for nb in $(CHAPTERS); do \
	  $(VENV)/bin/jupytext -q --pipe-fmt ipynb \
	    --check "$(RUFF) check -q --config pyproject.toml --output-format concise {}" \
	    --check "$(RUFF) format -q --check --config pyproject.toml {}" \
	    --to ipynb -o "$$scratch/$$(basename $$nb .md).ipynb" "$$nb" || status=1; \
	done; \
	rm -rf "$$scratch"; \
	if [ $$status = 0 ]; then echo "chapters' code cells: ruff check and format clean"; fi; \
	exit $$status

book: $(STAMP)
	$(PY) -m bnpaper book --profile $(PROFILE) --device $(DEVICE)

paper: $(STAMP)
	$(PY) -m bnpaper tune --profile paper --device $(DEVICE)
	$(PY) -m bnpaper book --profile paper --device $(DEVICE)

pdf: $(STAMP) system-deps
	$(PY) -m bnpaper pdf

release: $(STAMP)
	$(PY) -m bnpaper release

bench: $(STAMP)
	$(PY) -m bnpaper bench --device cpu --record

clean:
	rm -rf _build .bnpaper-cache
