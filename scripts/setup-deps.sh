#!/usr/bin/env bash
# Installs the Debian packages Stasis needs to build and test, and nothing else.
# Idempotent and quiet when everything is present; needs root (or sudo) only when something is missing.
set -euo pipefail

packages=(
  cmake make g++ pkg-config
  python3.11 python3.11-dev python3.11-venv   # the interpreter, its headers, and venv for build/bin/python
  libcereal-dev libzstd-dev zstd libboost-filesystem-dev libssl-dev
  libgtest-dev
  libpython3.11-testsuite                       # CPython's own tests: the rewriter's oracle
  python3-numpy                                 # numpy arrays in snapshots: tests and bench/numpy
  python3-pandas                                # pandas frames in snapshots (tests/handlers, tests/suspend)
  flake8 python3-mypy                           # static checks of setup.cfg (tests/lint/test_static.py)
  slurmctld slurmd slurm-client munge           # a real single-node Slurm cluster for tests/cluster
)
optional=(clang libclang-rt-14-dev)             # libFuzzer for the reader fuzz targets

missing=()
for p in "${packages[@]}" "${optional[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

echo "setup: installing missing Debian packages: ${missing[*]}"
sudo=""
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null || { echo "setup: need root to install: ${missing[*]}" >&2; exit 1; }
  sudo=sudo
fi
export DEBIAN_FRONTEND=noninteractive
# Refresh the package lists once if they are missing or older than a day.
if [ -z "$(find /var/lib/apt/lists -maxdepth 1 -name '*Packages*' -mtime -1 2>/dev/null | head -1)" ]; then
  $sudo apt-get update -qq
fi
$sudo apt-get install -y -qq --no-install-recommends "${packages[@]}" >/dev/null
# The fuzzing toolchain is optional: the build works without it.
$sudo apt-get install -y -qq --no-install-recommends "${optional[@]}" >/dev/null 2>&1 \
  || echo "setup: clang/libFuzzer not installed; fuzz targets will be skipped"
