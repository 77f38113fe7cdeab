# Two commands set everything up on a fresh machine:
#   make run   - venv, pinned dependencies, index (built if missing or stale), chat UI on http://127.0.0.1:7860
#   make test  - the same plus test extras, Debian's Chromium, nginx and the Debian documents the tests read, then pytest
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | sha256sum | cut -c1-12)
CHROMIUM := /usr/bin/chromium
# Debian packages the tests use besides Chromium, each as package:a file it provides; the missing ones
# are installed by one apt-get. Documents the extraction tests read (real files no one here wrote), and
# nginx for tests/test_deploy.py (it runs nginx on a loopback port with its own config, not the service).
TEST_DEBS := libtasn1-doc:/usr/share/doc/libtasn1-doc/libtasn1.pdf \
	shared-mime-info:/usr/share/doc/shared-mime-info/shared-mime-info-spec.pdf \
	base-passwd:/usr/share/doc/base-passwd/users-and-groups.html \
	libffi-dev:/usr/share/doc/libffi8/html/index.html \
	pandoc:/usr/bin/pandoc \
	nginx:/usr/sbin/nginx

export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_HUB_DISABLE_TELEMETRY=1 HF_HUB_DISABLE_PROGRESS_BARS=1
export GRADIO_ANALYTICS_ENABLED=False TOKENIZERS_PARALLELISM=false

.PHONY: run test install browser system-packages index eval bench load clean

run: install
	$(PY) app.py

test: install browser system-packages
	$(PY) -m pytest -q

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip 2>&1 | grep -v "is ignored" || true
	$(PY) -m pip install -q -e '.[test]' 2>&1 | grep -v "is ignored" || true
	$(PY) -c "import qa, faiss, bm25s, onnxruntime, sentence_transformers, gradio, playwright, pypdfium2, docx, lxml"
	rm -f $(VENV)/.installed-* && touch $@

# Debian's Chromium for the browser tests (never `playwright install`: it downloads browsers).
browser:
	@test -x $(CHROMIUM) || { \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && $$SUDO DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; }

system-packages:
	@missing=$$(for d in $(TEST_DEBS); do test -e "$${d#*:}" || echo "$${d%%:*}"; done); \
	if [ -n "$$missing" ]; then \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; fi

index: install
	$(PY) -m qa build

eval: index
	$(PY) -m qa eval tests/data/dev.jsonl

# Quick parts by default (warm, cold, memory; ~2 min); the corpora of ~1k-10k chunks with
# `make bench BENCH=--scale` (~30 min on 2 cores), ~100k with BENCH="--scale --sizes 100000" (hours).
bench: install
	$(PY) bench/run.py $(BENCH)

# The running app under load: concurrent sessions, overload, memory (bench/load_results.md).
load: install
	$(PY) bench/load.py

clean:
	rm -rf index .pytest_cache
