#!/bin/sh
# Run the Ray cluster tests (tests/ray/netns_*.py) inside a new network namespace that has only loopback:
# Ray binds the machine's non-loopback address otherwise, and tests must not use it. As root `unshare -n`;
# otherwise a user namespace maps us to root in it (`unshare -rn`). Arguments go to pytest.
set -eu
cd "$(dirname "$0")/../.."
PY="${PYTHON:-python3}"
if [ "$(id -u)" = 0 ]; then NS="-n"; else NS="-rn"; fi
exec unshare $NS sh -c 'ip link set lo up && exec "$0" -m pytest -q -p no:cacheprovider -o python_files="netns_*.py" "$@"' \
    "$PY" tests/ray "$@"
