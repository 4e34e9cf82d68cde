# Set-up is part of every target: a fresh clone needs only `make demo` or `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
INSTALLED := $(VENV)/.installed
DEMO := examples/tweet-sentiment

.PHONY: demo test bench lock clean

$(INSTALLED): requirements.lock pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements.lock
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
	touch $@

# The evaluation, then example (b) of a gate: the postmortem's tokenizer settings must fail it.
demo: $(INSTALLED)
	$(BIN)/textgate eval $(DEMO)/model.toml $(DEMO)/val.jsonl --slices $(DEMO)/slices.toml --out-dir reports/demo
	@echo; echo "== textgate gate $(DEMO)/gate-postmortem.toml (expected: FAIL, exit code 1) =="
	@$(BIN)/textgate gate $(DEMO)/gate-postmortem.toml --out-dir reports/gate-postmortem; \
	  code=$$?; if [ $$code -eq 1 ]; then echo "gate failed as expected (exit 1): see reports/gate-postmortem/report.html"; \
	  else echo "unexpected exit code $$code from the postmortem gate"; exit 1; fi

test: $(INSTALLED)
	$(BIN)/python -m pytest

# Every measured target (about 35 minutes on 2 cores); each script rewrites its BENCHMARKS.md section.
bench: $(INSTALLED)
	$(BIN)/python benchmarks/throughput.py --write
	$(BIN)/python benchmarks/gate_calibration.py --write
	$(BIN)/python benchmarks/serve_load.py --write
	$(BIN)/python benchmarks/packed_batch_size.py --write
	$(BIN)/python benchmarks/calibration.py --write
	$(BIN)/python benchmarks/audit_quality.py --write
	$(BIN)/python benchmarks/latency_check.py --write
	$(BIN)/python benchmarks/drift_calibration.py --write

# Re-pin every dependency. torch is pinned to the release whose CPU build this machine has;
# the resolver writes its local "+cpu" tag, which exists only on this disk, so it is dropped.
lock: $(INSTALLED)
	$(BIN)/pip-compile --quiet --no-emit-index-url --no-emit-find-links --all-extras --strip-extras \
		-P torch==2.13.0 -o requirements.lock pyproject.toml
	sed -i 's/^torch==\(.*\)+cpu/torch==\1/' requirements.lock

clean:
	rm -rf $(VENV) reports .pytest_cache
