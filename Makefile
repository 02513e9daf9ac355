# The two set-up commands of the README: `make run` (the main job) and `make test` (the tests).
# Both create .venv and install the project with the pinned versions on first use.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
RUN_ARGS ?= --task ee_gamma --model resnet15 xgboost logreg --trials 3 --max-epochs 6 --n-train 12000 --n-val 2000 --cpus-per-trial 2

.PHONY: setup run test gpu-check clean
setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e ".[dev,root,dashboard,cluster,hpo]"
	$(BIN)/python -c "import timm, torch; timm.create_model('vit_tiny_patch16_224', img_size=32, patch_size=8, in_chans=2, num_classes=1)(torch.zeros(1, 2, 32, 32))"
	touch $@

run: setup
	$(BIN)/bench run $(RUN_ARGS)

test: setup
	$(BIN)/python -m pytest

clean:
	rm -rf $(VENV) .pytest_cache

# For whoever has a CUDA GPU: the `gpu` tests, then bench perf's throughput and precision rows on it
# (under 8 minutes on one GPU). Writes leaderboard/perf_gpu.md.
gpu-check: setup
	$(BIN)/python -m pytest -m gpu -p no:cacheprovider tests/test_gpu.py
	$(BIN)/bench perf --gpu --only throughput precision --out leaderboard/perf_gpu.md
