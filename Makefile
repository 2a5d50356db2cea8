# The two commands of the README: `make run` and `make test`.
# Both create .venv when it is missing and install the pinned requirements (a quick no-op after).

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test lint format bench install model clean-db

# The first run writes .env (DEBUG on, a generated SECRET_KEY), read by settings from then on, so
# the commands `make run` and the README print work in a plain shell. Never overwritten.
run: $(STAMP)
	@$(BIN)/python -m shopbot.envfile .env
	$(BIN)/python manage.py serve

# Three pytest-xdist workers by default, on two cores: each module whole on one worker and the
# browser tests together (tests/conftest.py's groups). Two left the cores idle while servers
# started and browsers waited; a third fills that. Timings: docs/performance.md, "The test suite".
# On a machine already busy, one process (PYTEST_WORKERS=0) can be faster: each worker loads the models.
PYTEST_WORKERS ?= 3

test: model
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/python -m pytest -n $(PYTEST_WORKERS) --no-loadscope-reorder $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(STAMP)
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

install: model

# The embedding model exported for onnxruntime, with its tokenizer (EMBEDDING_ONNX_DIR): web
# processes embed with it and never load torch, so they never export it themselves (`manage.py
# serve`, which `make run` runs, exports it in a child process). A quick no-op when it is there.
model: $(STAMP)
	DEBUG=$${DEBUG:-1} $(BIN)/python manage.py export_model

# The benchmarks print figures; none of them is a pass/fail test.
bench: $(STAMP)
	DEBUG=$${DEBUG:-1} $(BIN)/python manage.py bench_chat
	$(BIN)/python bench/bench_reembed.py
	$(BIN)/python bench/bench_many_shops.py
	$(BIN)/python bench/load_test.py
	$(BIN)/python bench/bench_flood.py
	$(BIN)/python bench/bench_runtimes.py

$(STAMP): requirements.txt requirements-dev.txt requirements-multilingual.txt
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	# torch alone first: pinned to the CPU build, so nothing below pulls the CUDA one.
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -r requirements-dev.txt
	$(BIN)/pip install --quiet --no-deps --require-hashes -r requirements-multilingual.txt
	@touch $(STAMP)

# Stops and deletes the embedded database (all local data!).
clean-db:
	rm -rf var/pgdata
