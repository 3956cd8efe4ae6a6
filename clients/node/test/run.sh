#!/usr/bin/env bash
# run.sh - the smtpfault npm package's test suite (node --test) against the binary in SMTPFAULT_BIN: what
# CTest's clients.node runs. Nodemailer, its one development dependency, is installed from
# package-lock.json into clients/node/node_modules when missing or older than the lock (npm's cache first).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -d node_modules/nodemailer ] || [ package-lock.json -nt node_modules ]; then
    npm ci --prefer-offline --no-audit --no-fund --loglevel=error
    touch node_modules
fi
exec node --test test/*.test.js
