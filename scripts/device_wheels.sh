#!/usr/bin/env bash
# Download (here) the wheels the device image lacks, for Python 3.12 x86-64, into .whl/ (git-ignored);
# then run the device check with carry=[".devcheck", ".whl"].
set -eu
cd "$(dirname "$0")/.."
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
    -d .whl "av==18.1.0" "pyzmq==27.3.0"
du -sh .whl
