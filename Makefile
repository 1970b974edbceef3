# The two commands a newcomer needs are `make pilot` and `make test`; both install first.
PYTHON ?= python3.11
VENV := .venv
STAMP := $(VENV)/.installed

.PHONY: install pilot test lint clean

$(STAMP): setup.cfg pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --upgrade pip >/dev/null
	$(VENV)/bin/pip install -e '.[test,postgres]'
	touch $(STAMP)

install: $(STAMP)

pilot: install
	$(VENV)/bin/listning pilot

lint: install
	$(VENV)/bin/ruff check .

# Two workers, one test file each (module fixtures such as a running pilot stay per file):
# the suite waits on subprocesses and browsers much of the time, so this halves its length.
test: install lint
	$(VENV)/bin/pytest -n 2 --dist loadfile

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
