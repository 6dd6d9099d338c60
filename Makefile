# The README's two commands: `make run` (set up .venv/ and run the pipeline) and
# `make test` (set up .venv/ and run the tests). Both set up the environment first.
.PHONY: venv run test lock

venv:
	bash scripts/setup_venv.sh

run: venv
	.venv/bin/python run_local.py $(ARGS)

test: venv
	.venv/bin/python -m pytest $(PYTEST_ARGS)

# Regenerates requirements.lock from requirements.in (needs `uv`: `pip install uv`).
lock:
	uv pip compile requirements.in --python-version 3.10 --python-platform x86_64-manylinux_2_28 -o requirements.lock
