# Sourced by the benchmarks' run.sh: builds the release binaries and installs the peers (moto's
# server from PyPI, cognito-local from npm) into $work once. Needs $root and $work.
cargo build --release --locked -p cognate -p cognate-bench

if [ ! -x "$work/venv/bin/moto_server" ]; then
  python3 -m venv "$work/venv"
  "$work/venv/bin/pip" install --quiet --disable-pip-version-check 'moto[server]==5.2.5'
fi
if [ ! -x "$work/node/node_modules/.bin/cognito-local" ]; then
  mkdir -p "$work/node"
  (cd "$work/node" && npm init -y >/dev/null && npm install --no-audit --no-fund --loglevel=error cognito-local@3.23.3)
fi
