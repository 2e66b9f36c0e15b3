PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test test-fast venv bench clean train train-fast synth chromium

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -c constraints.txt -e '.[test,plots,web,raw,dask,train]'
	touch $(STAMP)

venv: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/mfif demo --out demo-output

test: $(STAMP) chromium
	$(PY) -m pytest -q

# Everyday tier: no test marked slow (trainings, fits, big stacks, killed processes), none that
# reads ../shared/data, none that drives the browser.
test-fast: $(STAMP)
	$(PY) -m pytest -q -m "not slow and not data and not browser"

# Debian's Chromium for the browser tests (tests marked `browser`; they skip without it). Installed
# only where apt-get can run as root (CI's fresh Debian machine); elsewhere this step does nothing.
chromium:
	@command -v chromium >/dev/null 2>&1 || { \
		if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
			(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
				|| echo "chromium: install failed; browser tests will be skipped"; \
		else echo "chromium: not installed and no root apt-get; browser tests will be skipped"; fi; }

# Speed and memory of every method on one synthetic 1-MP colour pair (prints a table).
bench: $(STAMP)
	$(PY) benchmarks/bench_methods.py

# The recipe of the shipped SFF weights (src/mfif/data/sff_weights.pt): the paper's recipe on
# patches synthesised from the BSDS500 training photos, then fine-tune it with sensor noise, JPEG
# and gain augmentation; copy runs/sff-noise/best.pt and best.json to
# src/mfif/data/sff_weights.pt / .json (docs/model_card.md).
TRAIN_IMAGES ?= ../shared/data/train_images
train: $(STAMP)
	$(VENV)/bin/mfif train $(TRAIN_IMAGES) --out runs/sff --batch 32 --seed 0 --max-minutes 60
	$(VENV)/bin/mfif train $(TRAIN_IMAGES) --out runs/sff-noise --batch 32 --seed 1 --max-minutes 40 \
		--init runs/sff/best.pt --noise 0.02 --jpeg 60 --brightness 0.05

# The recipe of the shipped sff-fast weights (src/mfif/data/sff_fast.pt/.onnx/.json): 2 epochs at
# lr 5e-4, then the paper's lr 1e-4 from that start, with the same augmentation as SFF's
# fine-tuning (docs/model_card.md); then the stride-2 network; then blur radii up to 24 px, as in
# the far frames of deep stacks (docs/model_card_fast.md). Copy runs/sff-fast-4/best.{pt,onnx,json}
# to src/mfif/data/sff_fast.{pt,onnx,json}.
FAST_TRAIN = --arch sff-fast --batch 16 --epoch-pairs 4096 --val-pairs 1024 --threads 1 --noise 0.02 --jpeg 60 --brightness 0.05
train-fast: $(STAMP)
	$(VENV)/bin/mfif train $(TRAIN_IMAGES) --out runs/sff-fast-1 $(FAST_TRAIN) --fine-stride 1 --lr 5e-4 --epochs 2 --seed 0
	$(VENV)/bin/mfif train $(TRAIN_IMAGES) --out runs/sff-fast-2 $(FAST_TRAIN) --fine-stride 1 --lr 1e-4 --epochs 100 \
		--patience 6 --max-minutes 25 --seed 0 --init runs/sff-fast-1/best.pt
	$(VENV)/bin/mfif train $(TRAIN_IMAGES) --out runs/sff-fast-3 $(FAST_TRAIN) --fine-stride 2 --lr 1e-4 --epochs 100 \
		--patience 6 --max-minutes 20 --seed 0 --init runs/sff-fast-2/best.pt
	$(VENV)/bin/mfif train $(TRAIN_IMAGES) --out runs/sff-fast-4 $(FAST_TRAIN) --fine-stride 2 --lr 1e-4 --epochs 100 \
		--patience 6 --max-minutes 40 --seed 0 --init runs/sff-fast-3/best.pt --radius 0.6,24

clean:
	rm -rf $(VENV) demo-output build *.egg-info src/*.egg-info

# --- synthetic data: the paper-shaped sets, see docs/synth.md ------------------------------------
# 1,412 training cases (1,270 train + 142 val, from 270 + 30 disjoint BSDS500 train photos)
# and 904 test cases (from the 200 BSDS500 test photos), 512x512, two sources each.
SYNTH_TRAIN_IMAGES ?= ../shared/data/train_images
SYNTH_TEST_IMAGES ?= ../shared/data/test_images
SYNTH_JOBS ?= 2
SYNTH_EXTRA ?=
PAPER_SYNTH = --test-images $(SYNTH_TEST_IMAGES) --size 512 --split 0.9,0.1,0 --counts 1270,142,904 \
	--seed 2025 --jobs $(SYNTH_JOBS) --force $(SYNTH_EXTRA)

.PHONY: synth-paper synth-paper-color

synth-paper: $(STAMP)
	$(VENV)/bin/mfif synth $(SYNTH_TRAIN_IMAGES) data-synth/paper-gray --gray $(PAPER_SYNTH)

synth-paper-color: $(STAMP)
	$(VENV)/bin/mfif synth $(SYNTH_TRAIN_IMAGES) data-synth/paper-color $(PAPER_SYNTH)

# `make synth` (declared phony above) builds the gray paper-shaped set.
synth: synth-paper

# --- benchmark: methods x data sets x metrics, see docs/benchmark.md -----------------------------
# bench-quick: CI-sized (2 cases per data set). bench-paper: the full paper-shaped gray test split
# (904 cases; read from data-synth/paper-gray when built, else synthesised on the fly, same cases),
# 100 colour cases and every real pair, all methods, BENCH_JOBS worker processes.
BENCH_JOBS ?= 2
BENCH_OUT ?= bench-output
BENCH_EXTRA ?=

.PHONY: bench-quick bench-paper

bench-quick: $(STAMP)
	$(PY) benchmarks/paperbench.py --quick --out $(BENCH_OUT)/quick $(BENCH_EXTRA)

bench-paper: $(STAMP)
	$(PY) benchmarks/paperbench.py --datasets paper-gray,paper-color:100,classic,mffw2,mffw3 --jobs $(BENCH_JOBS) \
		--out $(BENCH_OUT)/paper $(BENCH_EXTRA)
