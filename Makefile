# The two set-up commands of the README: `make run` (the main job) and `make test` (the tests).
# Both create .venv and install the project with the pinned versions on first use.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
RUN_ARGS ?= --task ee_gamma --model resnet15 xgboost logreg --trials 3 --max-epochs 6 --n-train 12000 --n-val 2000 --cpus-per-trial 2

.PHONY: setup run test gpu-check clean table image-table live compare
setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e ".[dev,root,dashboard,cluster,hpo,carps]"
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

# The recorded tables that bench compare replays (leaderboard/tables/): per task, a random search of the
# mlp (100 configs, every epoch of 8: no early stopping) and of xgboost (200 configs), 2,000 training rows,
# then both exported into one table. Resumable: run it again after an interruption. `make table TASK=hcal_dqm`
TASK ?= hcal_dqm
TABLE_ARGS ?= --sampler random --scheduler none --n-train 2000 --repeats 1 --leaderboard-dir runs/table-boards
table: setup
	@for spec in "mlp 100 --max-epochs 8" "xgboost 200"; do set -- $$spec; name=table-$(TASK)-$$1; \
	  space=benchmark/spaces/$(TASK)/$$1.yaml; extra=; [ -f $$space ] && extra="--space $$1=$$space"; \
	  resume=; [ -d runs/$$name ] && resume=--resume; \
	  echo "bench run --task $(TASK) --model $$1 --trials $$2 $$3 $$4 $$extra $(TABLE_ARGS) --name $$name $$resume"; \
	  $(BIN)/bench run --task $(TASK) --model $$1 --trials $$2 $$3 $$4 $$extra $(TABLE_ARGS) --name $$name $$resume || exit 1; \
	done
	$(BIN)/bench export runs/table-$(TASK)-mlp runs/table-$(TASK)-xgboost --out leaderboard/tables/$(TASK).parquet
	$(BIN)/python -c "from pathlib import Path; from benchmark.tables.page import tables_page; \
	  Path('leaderboard/tables/README.md').write_text(tables_page(Path('leaderboard/tables')))"

# The image-model tables (leaderboard/tables/<task>-images.parquet): per task, resnet15 (200 configs) and vit
# (150; atlas_topo and ee_gamma) by random search, 10 epochs each with no early stopping, costs measured,
# 32 of the configs again with 2 more training seeds (benchmark/tables/record.py). Hours per model on
# 2 cores; resumable: run it again after an interruption, finished searches are kept. `make image-table TASK=atlas_topo`
image-table: setup
	$(BIN)/python -m benchmark.tables.record $(TASK)

# The live check's searches (real training): TPE + ASHA on atlas_topo's mlp table, on its data and budget,
# one search of 40 trials per sampler seed, exported to leaderboard/tables/live/. Resumable.
LIVE_ARGS ?= --task atlas_topo --model mlp --trials 40 --max-epochs 8 --sampler tpe --scheduler asha --n-train 2000 --repeats 1 --leaderboard-dir runs/live-boards
LIVE := live-atlas_topo-mlp-tpe-asha
live: setup
	@for k in 1 2 3; do name=$(LIVE)-$$k; resume=; [ -d runs/$$name ] && resume=--resume; \
	  echo "bench run $(LIVE_ARGS) --sampler-seed $$k --name $$name $$resume"; \
	  $(BIN)/bench run $(LIVE_ARGS) --sampler-seed $$k --name $$name $$resume || exit 1; \
	done
	$(BIN)/bench export $(foreach k,1 2 3,runs/$(LIVE)-$(k)) --out leaderboard/tables/live/$(LIVE:live-%=%).parquet

# Every optimiser x scheduler, 20 seeds, replayed on every recorded table, with the live check:
# leaderboard/optimizers.md. From scratch about 3 hours on 2 cores, all but 3 minutes of it Optuna's GP
# sampler (240 replays, two at a time: 26-98 s each on an mlp table, 77-243 s on an xgboost table); its
# replays are kept in leaderboard/replays/gp/ (committed), so from a checkout it takes about 3 minutes; the
# others' are kept beside them (ignored by git). Resumable. The stability replay leaves GP out (it would
# cost 3 hours more).
compare: setup
	$(BIN)/bench compare leaderboard/tables/*.parquet --live leaderboard/tables/live/*.parquet \
	  --cache leaderboard/replays --stability-samplers tpe random cmaes qmc --out leaderboard/optimizers.md
