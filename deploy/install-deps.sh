#!/usr/bin/env bash
# Installs the Debian 12 packages quept builds and runs with.
#   libopenblas-dev  BLAS + LAPACK (sgemm, Cholesky)
#   libzmq3-dev      ZeroMQ transport between coordinator and workers
#   libmsgpack-dev   MessagePack headers (wire and artifact)
#   liblz4-dev       LZ4 tensor compression
#   libcjson-dev     JSON (config.json, safetensors headers): small, well kept
#   libpcre2-dev     regexes of tokenizer.json pre-tokenizers (Unicode classes, UTF + UCP)
#   libunistring-dev NFC normalization of tokenizer.json normalizers (Qwen2/3)
set -euo pipefail
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
PKGS="build-essential cmake pkg-config libopenblas-dev libzmq3-dev libmsgpack-dev liblz4-dev libcjson-dev libpcre2-dev libunistring-dev"
missing=""
for p in $PKGS; do
  dpkg -s "$p" >/dev/null 2>&1 || missing="$missing $p"
done
if [ -n "$missing" ]; then
  echo "installing:$missing"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq $missing
fi
