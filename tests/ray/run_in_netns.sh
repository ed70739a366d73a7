#!/bin/sh
# Run the Ray cluster tests (tests/ray/netns_*.py) inside a new network namespace that has only loopback:
# Ray binds the machine's non-loopback address otherwise, and tests must not use it. Ways in, first that
# works: root `unshare -n`; a user namespace that maps us to root (`unshare -rn`); `sudo -n unshare -n`
# (CI runners whose kernel forbids unprivileged user namespaces but give passwordless sudo).
# `--probe`: only say whether one works (exit 0) or why not (exit 1). Other arguments go to pytest.
set -eu
cd "$(dirname "$0")/../.."
PY="${PYTHON:-python3}"
INNER='ip link set lo up && exec "$0" -m pytest -q -p no:cacheprovider -o python_files="netns_*.py" "$@"'
way=""
why=""
for w in "unshare -n" "unshare -rn" "sudo -n unshare -n"; do
    case "$w" in "unshare -n") [ "$(id -u)" = 0 ] || continue ;; esac
    if out=$($w sh -c 'ip link set lo up' 2>&1); then way="$w"; break; fi
    why="$why; $w: $(echo "$out" | tail -n 1)"
done
if [ -z "$way" ]; then
    echo "no network namespace here${why}" >&2
    exit 1
fi
if [ "${1:-}" = "--probe" ]; then
    echo "$way"
    exit 0
fi
# sudo drops the environment: pass what the tests need on the command line
exec $way env "PATH=$PATH" "HOME=${HOME:-/tmp}" \
    sh -c "$INNER" "$PY" tests/ray "$@"
