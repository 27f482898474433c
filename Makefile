# edgec: one command sets up and runs the demo, one sets up and runs the tests.
#   make demo    set-up + compile the bundled example, print its verification figures and what int8 buys
#   make test    set-up + the test suite (what .ci/run calls)
#   make bench   set-up + the slow benchmarks (excluded from `make test`)
#   make fuzz    set-up + the bad-input survey (every family through the CLI) and wide property fuzzing
#   make bench-compile-time   int8 compile time vs litert-torch + ai-edge-quantizer (own environment)
#   make coverage  set-up + timm/transformers + the real-architecture coverage table (benchmarks/coverage.py)

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
EDGEC  := $(VENV)/bin/edgec
STAMP  := $(VENV)/.installed
SYSDEPS_STAMP := $(VENV)/.sysdeps
# Tests run in parallel workers; 2 matches this project's CI machine.
JOBS   ?= 2

.PHONY: setup sysdeps demo test bench fuzz peers bench-int8 models coverage clean

setup: $(STAMP) $(SYSDEPS_STAMP)

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip

# torch is pinned to the CPU wheel (2.13.0); an unpinned torch would pull a multi-GB CUDA build.
$(STAMP): pyproject.toml | $(VENV)/bin/python
	$(PY) -m pip install -q -e '.[test,data,plots,rpc]'
	touch $@

# Debian packages: the aarch64 cross toolchain (TVM arm64 builds), `file`, qemu-user (arm64 runs);
# then the emulated arm64 userland (qemu-arm64 device) and the WebAssembly runners (npm into .node/,
# Debian's chromium for the browser device).
$(SYSDEPS_STAMP): scripts/install-system-deps.sh scripts/setup-qemu-arm64.sh scripts/setup-wasm.sh runtimes/js/package.json | $(VENV)/bin/python
	bash scripts/install-system-deps.sh
	@# The emulated and wasm devices are optional: without them their tests skip, naming the script.
	bash scripts/setup-qemu-arm64.sh || echo "warning: qemu-arm64 device not set up; its tests will skip"
	bash scripts/setup-wasm.sh --browser || echo "warning: wasm devices not set up; their tests will skip"
	touch $@

sysdeps: $(SYSDEPS_STAMP)

# The bundled example: MobileNet v2 trained on MNIST (edgec/zoo/weights), int8 for arm64.
demo: setup
	$(PY) examples/mnist/make_calibration.py out/demo/mnist_calib.npz
	$(EDGEC) compile 'zoo:mobilenet_v2?weights=mnist' --target arm64-int8 --calib out/demo/mnist_calib.npz -o out/demo
	$(EDGEC) inspect out/demo/mobilenet_v2.arm64-int8.tflite
	@# What int8 buys: float vs int8 top-1 on the MNIST test split, size and interleaved latency ratios.
	$(EDGEC) compile 'zoo:mobilenet_v2?weights=mnist' --target arm64-fp32 --format tflite -o out/demo
	$(PY) examples/mnist/int8_summary.py out/demo/mobilenet_v2.arm64-int8.tflite --float out/demo/mobilenet_v2.arm64-fp32.tflite

test: setup
	$(PY) -m pytest -n $(JOBS) -q

bench: setup
	$(PY) -m pytest -m slow -q -s

# The bad-input survey through the CLI (every family, every case clear) and 20x the property examples.
fuzz: setup
	EDGEC_FUZZ_PROFILE=wide $(PY) -m pytest -q -s tests/fuzz -m "slow or not slow"

# TensorFlow lives in its own environment: only the peer comparison needs its converter, and
# its pins (protobuf, numpy) clash with onnx's.
PEERS := .venv-peers
$(PEERS)/.installed:
	$(PYTHON) -m venv $(PEERS)
	$(PEERS)/bin/pip install -q 'tensorflow-cpu==2.21.*'
	touch $@

peers: $(PEERS)/.installed

# edgec int8 vs the TFLite converter's int8 vs onnxruntime's quantize_static (issue 3).
bench-int8: setup peers
	$(PY) benchmarks/bench_int8.py

# The optional 'models' extra (timm, transformers) without letting pip touch torch: timm's torchvision
# requirement is skipped on purpose (see pyproject.toml); its other requirements come with transformers.
$(VENV)/.models: pyproject.toml | $(STAMP)
	$(PY) -m pip install -q 'transformers>=5' 'huggingface_hub' 'safetensors' 'pyyaml'
	$(PY) -m pip install -q --no-deps 'timm>=1.0'
	touch $@

models: $(VENV)/.models

# 52 timm/transformers architectures (random weights) x {x86_64-fp32, x86_64-int8}; not part of `make test`.
# Table in benchmarks/results/coverage.md. Pass e.g. COVERAGE_ARGS='--only resnet18 --jobs 2'.
coverage: setup models
	$(PY) benchmarks/coverage.py $(COVERAGE_ARGS)

# litert-torch + ai-edge-quantizer (Google's torch -> int8 TFLite path) in their own environment:
# they pull jax, transformers and their own converter. torch stays at edgec's pin.
LITERT_TORCH := .venv-litert-torch
$(LITERT_TORCH)/.installed:
	$(PYTHON) -m venv $(LITERT_TORCH)
	$(LITERT_TORCH)/bin/pip install -q --upgrade pip
	$(LITERT_TORCH)/bin/pip install -q 'torch==2.13.0' 'litert-torch==0.10.*' 'ai-edge-quantizer==0.10.*'
	touch $@

peers-litert-torch: $(LITERT_TORCH)/.installed

# int8 compile time of MobileNet v2 224 (256 calibration samples): edgec vs litert-torch + ai-edge-quantizer.
bench-compile-time: setup peers-litert-torch
	$(PY) benchmarks/bench_compile_time.py

clean:
	rm -rf out build *.egg-info .pytest_cache
