# pks4_lit: every command a user needs, from a fresh clone.
#   make demo   set up, write the embedded dataset, train + test PKS4 and TSN on CPU, print a table
#   make test   set up, run the test suite
SHELL := /bin/bash
PYTHON ?= python3.11
VENV ?= .venv
PY := $(VENV)/bin/python
PKS4 := $(VENV)/bin/pks4
TORCH_PINS ?= torch==2.14.1 torchvision==0.29.1
SYNTH ?= data/synthetic
PYTEST_ARGS ?=

.PHONY: setup test test-all demo tensorboard clean

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q $(TORCH_PINS)
	$(PY) -m pip install -q -e '.[dev]'
	touch $@

test: setup
	$(PY) -m pytest -q $(PYTEST_ARGS)

# writes $(SYNTH) and data/weights/ if missing, trains + tests conf/synthetic/{pks4,tsn}.yaml, prints the table
demo: setup
	$(PY) scripts/demo.py --synthetic $(SYNTH)

# every run logs under runs/<config dir>/<config name>/version_N (scalars, hparams, confusion matrices)
TB_PORT ?= 6006
tensorboard: setup
	$(VENV)/bin/tensorboard --logdir runs --port $(TB_PORT)

clean:
	rm -rf runs lightning_logs .pytest_cache

# ---- paper tables (pks4_lit/tables.py): markdown into docs/RESULTS.md, plots into docs/figures/
#   make table-efficiency                      time, memory, FLOPs per head as T grows 8 -> 128 (BENCH_ARGS=...)
#   make table-lr                              each frozen head's LR chosen on validation (kinematic set, 2 seeds)
#   make table-main                            every frozen head on the temporal, spatial and kinematic sets,
#                                              5 seeds, from feature stores (runs table-lr first if needed)
#   make table-ablation                        PKS4 on the kinematic set: each prior off, global scan,
#                                              bidirectional, radius, d_state; paired tests vs full
#   make table-e2e                             ST-Adapter and VideoMamba from pixels, same protocol (hours on 2 cores;
#                                              not part of `make tables`); first ST-Adapter's own LR sweep on the
#                                              kinematic validation split (4 LRs x 2 seeds, from pixels; reused from
#                                              docs/results/e2e.json when its settings match), written into
#                                              conf/synthetic/st_adapter.yaml. One set: TABLE_ARGS='--sets kinematic'
#                                              (the block names the sets not run); --models, --lr-grid too
#   (synthetic tables: TABLE_ARGS="--jobs 2 --epochs 8 --seeds 5 ..." passes options through)
#   make table-ssv2 DATA=/path/to/ssv2         conf/ssv2 recipes on Something-Something V2 (GPU)
#   make table-k400 DATA=/path/to/k400         conf/k400 recipes on Kinetics-400 (GPU)
#   make tables                                efficiency + main + ablation
BENCH_ARGS ?= --extra-T 256 512 --interleave
TABLE_ARGS ?=
TABLE_OPTS = $(if $(DATA),--data-dir $(DATA)) $(if $(EPOCHS),--epochs $(EPOCHS)) $(if $(CONFIG_DIR),--config-dir $(CONFIG_DIR)) $(TABLE_ARGS)
TABLES_PY = PKS4_TABLES_COMMAND="$(strip make $@ $(if $(DATA),DATA=$(DATA)) $(if $(EPOCHS),EPOCHS=$(EPOCHS)) $(if $(CONFIG_DIR),CONFIG_DIR=$(CONFIG_DIR)) $(if $(TABLE_ARGS),TABLE_ARGS='$(TABLE_ARGS)'))" $(PY) -m pks4_lit.tables

.PHONY: tables table-efficiency table-lr table-e2e table-main table-ablation table-ssv2 table-k400

tables: table-efficiency table-main table-ablation

table-efficiency: setup
	$(TABLES_PY) efficiency $(BENCH_ARGS)

table-lr: setup
	$(TABLES_PY) lr $(TABLE_OPTS)

table-main: setup
	$(TABLES_PY) main $(TABLE_OPTS)

table-e2e: setup
	$(TABLES_PY) e2e $(TABLE_OPTS)

table-ablation: setup
	$(TABLES_PY) ablation $(TABLE_OPTS)

table-ssv2: setup
	$(TABLES_PY) ssv2 --data "$(DATA)" $(if $(EPOCHS),--epochs $(EPOCHS)) $(if $(CONFIG_DIR),--config-dir $(CONFIG_DIR)) $(TABLE_ARGS)

table-k400: setup
	$(TABLES_PY) k400 --data "$(DATA)" $(if $(EPOCHS),--epochs $(EPOCHS)) $(if $(CONFIG_DIR),--config-dir $(CONFIG_DIR)) $(TABLE_ARGS)

# ---- the compute claim (pks4_lit/tables/table_compute.py): training FLOPs and wall time to a val top-1 target
#   make table-compute [COMPUTE_ARGS="--seeds 0 1 2 --target 0.8"]   docs/results/compute.json + a docs/RESULTS.md section
COMPUTE_ARGS ?=
.PHONY: table-compute
table-compute: setup
	PKS4_TABLES_COMMAND="$(strip make table-compute $(if $(COMPUTE_ARGS),COMPUTE_ARGS='$(COMPUTE_ARGS)'))" nice -n 10 $(PY) -m pks4_lit.tables compute $(COMPUTE_ARGS)
