#!/usr/bin/env bash
# Install the right PyTorch build into a virtual environment, before anything else,
# and write a pip constraints file that keeps it (see docs/getting-started.md):
#   1. a CUDA machine (nvidia-smi sees a GPU): the registry's default build;
#   2. a machine whose pip already serves a local CPU build (find-links, as on the
#      project's own machines): that build;
#   3. any other machine: PyTorch's own CPU wheel index.
# usage: scripts/install_torch.sh VENV_PYTHON CONSTRAINTS_FILE
set -euo pipefail
py=$1
constraints=$2
version=${TORCH_VERSION:-2.13.0}

if "$py" -c "import torch, sys; sys.exit(0 if torch.__version__.split('+')[0] == '$version' else 1)" 2>/dev/null; then
    echo "torch $version already installed"
elif command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
    echo "CUDA GPU found: installing the default (CUDA) build of torch $version"
    "$py" -m pip install "torch==$version"
elif "$py" -m pip install -q --no-index --no-deps "torch==$version" 2>/dev/null; then
    echo "installed the locally served CPU build of torch $version"
    "$py" -m pip install "torch==$version"   # its dependencies; torch itself stays
else
    echo "no GPU: installing torch $version from PyTorch's CPU wheel index"
    "$py" -m pip install --index-url https://download.pytorch.org/whl/cpu \
        --extra-index-url https://pypi.org/simple "torch==$version"
fi
echo "torch==$version" > "$constraints"
