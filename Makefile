# digitlab: the two commands a newcomer runs are `make demo` and `make test`.
# Both create their own virtual environment and install what they need.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
STAMP  := $(VENV)/.installed-$(shell cat pyproject.toml constraints.txt | cksum | cut -d' ' -f1)
# Fashion-MNIST's system files, a real browser, the fonts the realistic image sets and the
# reader's synthetic lines render (handwriting fonts for non-digit marks), and Tesseract (a peer OCR
# engine of `make bench-realistic PEERS=tesseract`; its tests skip without it, like the browser's).
APT_PACKAGES := dataset-fashion-mnist chromium chromium-driver fonts-dejavu fonts-liberation fonts-freefont-ttf \
  fonts-dkg-handwriting fonts-breip fonts-femkeklaver fonts-humor-sans fonts-klee tesseract-ocr

.PHONY: demo test test-slow test-ci-slow install system-deps bench bench-realistic lint default-model clean

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	# torch first and pinned: a bare `torch` would pull several GB of CUDA packages.
	$(PIP) install -q -c constraints.txt torch
	$(PIP) install -q -c constraints.txt -e '.[bench,test,lint,tensorboard,peers]'
	rm -f $(VENV)/.installed-*; touch $@

install: $(STAMP)

# Debian packages the tests use, installed when missing and we are root.
system-deps:
	@missing=$$(for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; \
	  else echo "note: not root, not installing Debian packages: $$missing"; fi; \
	fi

# Main job: train the default `cnn` recipe on MNIST, evaluate, plot, predict a few images.
demo: install
	$(VENV)/bin/digitlab train --recipe cnn --run-dir runs/demo --overwrite
	$(VENV)/bin/digitlab evaluate runs/demo
	$(VENV)/bin/digitlab data export-png mnist --split test --count 5 --out runs/demo/samples
	$(VENV)/bin/digitlab predict runs/demo runs/demo/samples

# The whole fast suite.
test: install system-deps
	$(PY) -m pytest

# Every slow accuracy / load run as well (long).
test-slow: install system-deps
	$(PY) -m pytest -m slow

# The slow runs CI checks: the tutorials' accuracies for tf-softmax and keras-mlp.
test-ci-slow: install system-deps
	$(PY) -m pytest -m slow -k "tf_softmax or keras_mlp"

bench: install
	$(PY) -m benchmarks.run

# Accuracy per condition on the realistic synthetic sets (phone photos, numbers, canvases, print,
# non-digits) of the bundled model, or of RUN=path/to/run. PEERS=tesseract,rapidocr: other OCR
# engines read the same digit and number pictures (Tesseract from `make system-deps`, RapidOCR from the peers extra).
# Several seeds, clean versions of the pictures, contact sheets: `python -m benchmarks.realistic --help`.
PEERS ?=
bench-realistic: install
	$(PY) -m benchmarks.realistic $(RUN) $(if $(PEERS),--peers $(PEERS))

# ruff (lint + import order) and mypy, configured in pyproject.toml.
lint: install
	$(VENV)/bin/ruff check src tests benchmarks
	$(VENV)/bin/mypy

# The bundled default models (src/digitlab/pretrained/): trained by the project's own recipes,
# measured on the realistic sets, copied in with their model cards. About 5 minutes on 2 cores. The
# `robust` recipe needs Fashion-MNIST (outlier exposure): system-deps installs Debian's package.
DEFAULT_RUNS := runs/default-models
default-model: install system-deps
	$(VENV)/bin/digitlab train --recipe robust --run-dir $(DEFAULT_RUNS)/mnist --overwrite --verbose 2
	$(PY) -m benchmarks.realistic $(DEFAULT_RUNS)/mnist --out $(DEFAULT_RUNS)/mnist/realistic
	$(PY) -m digitlab.pretrained.build $(DEFAULT_RUNS)/mnist --dataset mnist --realistic $(DEFAULT_RUNS)/mnist/realistic/results.json
	$(VENV)/bin/digitlab train --recipe fashion-default --run-dir $(DEFAULT_RUNS)/fashion-mnist --overwrite --verbose 2
	$(PY) -m digitlab.pretrained.build $(DEFAULT_RUNS)/fashion-mnist --dataset fashion-mnist
	$(VENV)/bin/digitlab train --recipe reader --run-dir $(DEFAULT_RUNS)/reader --overwrite
	$(PY) -m digitlab.pretrained.build $(DEFAULT_RUNS)/reader --dataset reader

clean:
	rm -rf $(VENV) build dist src/*.egg-info .pytest_cache
