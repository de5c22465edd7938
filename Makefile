# Two commands do the whole set-up on a fresh machine:
#   make demo   — create .venv with pinned dependencies if missing, then run `medrep demo` on the embedded default
#   make test   — same environment, then the test suite (CI runs exactly this through .ci/run)
VENV ?= .venv
PY := $(VENV)/bin/python
# The CPU build of torch lies in /opt/wheels on these machines; elsewhere pip finds torch==2.13.0 on PyPI.
FIND_LINKS := $(if $(wildcard /opt/wheels),--find-links /opt/wheels,)
PIP_INSTALL := $(PY) -m pip install --quiet --disable-pip-version-check $(FIND_LINKS) -c constraints.txt
OUT ?= demo-out
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1

.PHONY: demo test venv benchmarks train-demo-models browser clean

$(VENV)/.installed: pyproject.toml constraints.txt
	test -x $(PY) || python3 -m venv $(VENV)
	$(PIP_INSTALL) -e '.[test]' 2>&1 | grep -v 'is ignored: it is neither' || true
	$(PY) -c "import medrep, timm, open_clip, transformers, sklearn, skimage, captum, pytorch_grad_cam" 
	touch $@

venv: $(VENV)/.installed

demo: $(VENV)/.installed
	$(VENV)/bin/medrep demo --out $(OUT)

# Headless Chromium for the report test (Debian's package; skipped quietly where apt is unavailable).
browser:
	@command -v chromium >/dev/null 2>&1 || { command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ] && \
	  (apt-get update -qq >/dev/null 2>&1; DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null 2>&1) || true; }

test: $(VENV)/.installed browser
	$(PY) -m pytest -q -p no:cacheprovider

benchmarks: $(VENV)/.installed
	$(PY) benchmarks/run_all.py

train-demo-models: $(VENV)/.installed
	$(PY) scripts/train_demo_models.py

clean:
	rm -rf $(VENV) $(OUT) .pytest_cache
