#!/usr/bin/env bash
# The README's demo on a machine with nothing installed: the demo binary runs in an empty
# directory with DATABASE_URL and REDIS_URL unset, inside a network namespace of its own
# (`unshare -n`, loopback up) where no PostgreSQL or Redis can be reached, and must exit 0
# with every item of its job terminal. Usage: scripts/fresh-demo.sh [path/to/overseer]
set -euo pipefail
binary="$(realpath "${1:-target/debug/overseer}")"
items=2000
dir="$(mktemp -d)"
trap 'rm -rf "$dir"' EXIT
log="$dir/demo.log"
set +e
# shellcheck disable=SC2016
unshare -n sh -c 'ip link set lo up && cd "$1" && exec env -u DATABASE_URL -u REDIS_URL "$2" demo --exit --items "$3" --customers 20' \
  sh "$dir" "$binary" "$items" >"$log" 2>&1
code=$?
set -e
cat "$log"
if [ "$code" -ne 0 ]; then
  echo "fresh-machine demo: exit code $code" >&2
  exit 1
fi
summary="$(grep -E '^job [0-9]+ completed: ' "$log" | tail -n 1)"
read -r succeeded skipped failed total < <(echo "$summary" |
  sed -E 's/.*: ([0-9]+) succeeded, ([0-9]+) skipped, ([0-9]+) failed of ([0-9]+)/\1 \2 \3 \4/')
if [ "$total" -ne "$items" ] || [ $((succeeded + skipped + failed)) -ne "$items" ] || [ "$succeeded" -eq 0 ]; then
  echo "fresh-machine demo: counts do not add up: $summary" >&2
  exit 1
fi
[ -f "$dir/overseer.db" ] || { echo "fresh-machine demo: no overseer.db in the working directory" >&2; exit 1; }
grep -q 'store: embedded SQLite file overseer.db' "$log" || { echo "fresh-machine demo: no store line" >&2; exit 1; }
echo "fresh-machine demo: ok ($summary)"
