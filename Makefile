# One command each, on a fresh machine (Debian, Python >= 3.11):
#   make test    install everything the tests need, then run them
#   make book    install what the book needs, execute every chapter (quick profile), build both editions
#   make bench   BN forward+backward timings against torch's native batch_norm (CPU)
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
PROFILE ?= quick
DEVICE  ?= auto
STAMP  := $(VENV)/.installed

.PHONY: test book paper bench system-deps clean

$(STAMP): pyproject.toml requirements-lock.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements-lock.txt
	$(PY) -m pip install -q --no-deps --no-build-isolation -e .
	touch $@

# Debian packages: Chromium for the browser tests, Noto fonts for Arabic pages. Needs root.
system-deps:
	@if ! command -v chromium >/dev/null 2>&1; then \
	  apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium fonts-noto-core; \
	fi

test: $(STAMP) system-deps
	$(PY) -m pytest -q

book: $(STAMP)
	$(PY) -m bnpaper book --profile $(PROFILE) --device $(DEVICE)

paper: $(STAMP)
	$(PY) -m bnpaper book --profile paper --device $(DEVICE)

bench: $(STAMP)
	$(PY) -m bnpaper bench --device cpu

clean:
	rm -rf _build .bnpaper-cache
