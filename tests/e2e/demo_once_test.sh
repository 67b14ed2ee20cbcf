#!/usr/bin/env bash
# scripts/demo --once must start the system, process transactions, print the summary, the
# balances and the invariant check, and stop every process it started.
set -euo pipefail
root="$1"
out=$(mktemp)
trap 'rm -f "$out"' EXIT
if ! "$root/scripts/demo" --once --workers 2 --count 30 >"$out" 2>&1; then
  echo "scripts/demo --once failed:"; tail -60 "$out"; exit 1
fi
fail=0
check() { grep -q -- "$1" "$out" || { echo "missing from the demo's output: $1"; fail=1; }; }
check "gen_transactions summary"
check "accepted (202)"
check "refused by gateway"
check "balances of the demo wallets"
check "reconcile: 0 problem(s)"
check "ledger.transactions.error holds"
grep -q "NOT FINAL" "$out" && { echo "some accepted transactions did not reach a final state"; fail=1; }
# Nothing left running: every pid the demo recorded is gone.
for f in "$root"/.run/pids/*.pid; do
  [ -e "$f" ] || continue
  if kill -0 "$(cat "$f")" 2>/dev/null; then echo "still running: $f"; fail=1; fi
done
for name in ledger-worker api-gateway notifier plaid-sync; do
  if pgrep -f "$root/build/.*/$name\$" >/dev/null; then echo "a $name process is still running"; fail=1; fi
done
[ "$fail" = 0 ] && echo "demo --once: ok"
exit "$fail"
