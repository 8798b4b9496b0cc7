#!/usr/bin/env bash
# Cognate compatibility suite: drives a real `cognate serve` with unmodified clients
# (boto3 / aws CLI v1 pinned to botocore 1.43.11, and @aws-sdk/client-cognito-identity-provider).
#
#   tests/compat/run.sh                 # uses target/debug/cognate
#   COGNATE_BIN=target/release/cognate tests/compat/run.sh
#   tests/compat/run.sh -k secret_hash  # extra args go to pytest
#
# The binary is not built here: build it first (cargo build).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo_root="$(cd "$here/../.." && pwd)"
cd "$repo_root"

# --- Python clients -------------------------------------------------------------------
venv="$here/.venv"
if [ ! -x "$venv/bin/python" ]; then
  echo "[compat] creating $venv"
  python3 -m venv "$venv"
fi
stamp="$venv/.requirements-installed"
if [ ! -f "$stamp" ] || [ "$here/requirements.txt" -nt "$stamp" ]; then
  echo "[compat] installing Python requirements"
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$here/requirements.txt"
  touch "$stamp"
fi

# --- openssl: certificates for the https-upstream tests --------------------------------
if ! command -v openssl >/dev/null 2>&1; then
  echo "[compat] installing openssl"
  sudo=""; [ "$(id -u)" -ne 0 ] && sudo="sudo"
  $sudo apt-get install -y -q openssl >/dev/null 2>&1 \
    || { $sudo apt-get update -q >/dev/null && $sudo apt-get install -y -q openssl >/dev/null; }
fi

# --- nginx: the load balancer in front of two nodes in the chaos test -------------------
if ! command -v nginx >/dev/null 2>&1 && [ ! -x /usr/sbin/nginx ]; then
  echo "[compat] installing nginx"
  sudo=""; [ "$(id -u)" -ne 0 ] && sudo="sudo"
  $sudo apt-get install -y -q nginx >/dev/null 2>&1 \
    || { $sudo apt-get update -q >/dev/null && $sudo apt-get install -y -q nginx >/dev/null; }
fi

# --- Node client ----------------------------------------------------------------------
echo "[compat] installing Node dependencies"
if [ -f "$here/node/package-lock.json" ]; then
  (cd "$here/node" && npm ci --no-audit --no-fund --loglevel=error)
else
  (cd "$here/node" && npm install --no-audit --no-fund --loglevel=error)
fi

# --- Server binary --------------------------------------------------------------------
bin="${COGNATE_BIN:-target/debug/cognate}"
case "$bin" in
  /*) ;;
  *) bin="$repo_root/$bin" ;;
esac
if [ ! -x "$bin" ]; then
  echo "[compat] cognate binary not found or not executable: $bin (build it, or set COGNATE_BIN)" >&2
  exit 1
fi
export COGNATE_BIN="$bin"
echo "[compat] using $COGNATE_BIN"

# Keep the clients away from any AWS configuration of the machine.
unset AWS_PROFILE AWS_DEFAULT_PROFILE AWS_ENDPOINT_URL AWS_ENDPOINT_URL_COGNITO_IDENTITY_PROVIDER || true
export AWS_CONFIG_FILE=/dev/null AWS_SHARED_CREDENTIALS_FILE=/dev/null
export AWS_EC2_METADATA_DISABLED=true
export PATH="$venv/bin:$PATH"

py_rc=0
"$venv/bin/python" -m pytest "$here/python" -q -p no:cacheprovider "$@" || py_rc=$?

node_rc=0
node --test "$here/node/" || node_rc=$?

echo "[compat] pytest exit=$py_rc node --test exit=$node_rc"
if [ "$py_rc" -ne 0 ] || [ "$node_rc" -ne 0 ]; then
  exit 1
fi
