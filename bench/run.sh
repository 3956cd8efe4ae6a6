#!/usr/bin/env bash
# bench/run.sh [path/to/smtpfault] [options] - throughput of smtpfault against Postfix's smtp-sink.
#
# Both servers are driven by Postfix's smtp-source over loopback; see bench/bench.py --help for the
# options and docs/performance.md for what is measured. Not part of `make test`: run it with `make bench`.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"

binary="$here/../build/smtpfault"
if [ "$#" -gt 0 ] && [ "${1#-}" = "$1" ]; then
  binary="$1"
  shift
fi

# Debian's interpreter: the helper needs only the standard library.
python=/usr/bin/python3
[ -x "$python" ] || python="$(command -v python3 || true)"
if [ -z "$python" ]; then
  echo "bench: python3 is needed (apt-get install python3)" >&2
  exit 1
fi

for tool in smtp-sink smtp-source; do
  if [ ! -x "/usr/sbin/$tool" ] && ! command -v "$tool" >/dev/null 2>&1; then
    echo "bench: /usr/sbin/$tool not found: it comes with Debian's postfix package." >&2
    echo "bench: install it without configuring the mail system, e.g. .ci/install-deps --test" >&2
    exit 1
  fi
done

exec "$python" "$here/bench.py" "$binary" "$@"
