#!/usr/bin/env bash
# scripts/requeue against the real broker (the vhost scripts/test gives this run): a dry run
# moves nothing, --reason moves only the matching message, no --reason moves the rest, --limit
# caps the count, an unroutable target aborts without losing anything, and every body arrives
# byte for byte with its properties, the failure headers replaced by the requeue ones.
# Needs TXP_TEST_VHOST and TXP_TEST_RABBIT_API (http://user:pass@host:15672/api); exits 77
# (skipped) without them.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
requeue="$root/scripts/requeue"
if [ -z "${TXP_TEST_VHOST:-}" ] || [ -z "${TXP_TEST_RABBIT_API:-}" ]; then
    echo "skipped: TXP_TEST_VHOST and TXP_TEST_RABBIT_API are not set (scripts/test sets them)"
    exit 77
fi
api="${TXP_TEST_RABBIT_API%/}"
vhost="$TXP_TEST_VHOST"
vh="$(jq -rn --arg v "$vhost" '$v|@uri')"
main="requeue_test.$$.$RANDOM"
err="$main.error"
work="$(mktemp -d)"
passed=0
failed=0

call() {  # METHOD PATH [JSON]
    if [ $# -ge 3 ]; then
        curl -sS -f -X "$1" -H 'content-type: application/json' --data-binary "$3" "$api$2"
    else
        curl -sS -f -X "$1" "$api$2"
    fi
}
cleanup() {
    call DELETE "/queues/$vh/$(jq -rn --arg q "$main" '$q|@uri')" >/dev/null 2>&1 || true
    call DELETE "/queues/$vh/$(jq -rn --arg q "$err" '$q|@uri')" >/dev/null 2>&1 || true
    rm -rf "$work"
}
trap cleanup EXIT

check() {  # DESCRIPTION COMMAND...
    local what="$1"; shift
    if "$@" >/dev/null; then
        passed=$((passed + 1)); echo "ok: $what"
    else
        failed=$((failed + 1)); echo "FAILED: $what"
    fi
}

# Every message in QUEUE, in order, as the management API returns them (fetched with
# requeue, so the queue keeps them).
peek() {
    call POST "/queues/$vh/$(jq -rn --arg q "$1" '$q|@uri')/get" \
        '{"count":1000,"ackmode":"ack_requeue_true","encoding":"base64"}'
}

declare_queue() { call PUT "/queues/$vh/$(jq -rn --arg q "$1" '$q|@uri')" '{"durable":true,"auto_delete":false}' >/dev/null; }

# park ID REASON BODY_BASE64: a message as ledger-worker parks it (txp.error routing).
park() {
    local body
    body="$(jq -n --arg id "$1" --arg reason "$2" --arg payload "$3" --arg origin "$main" --arg rk "$err" '{
        routing_key: $rk, payload: $payload, payload_encoding: "base64",
        properties: {
            message_id: $id, correlation_id: ("corr-" + $id), type: "ledger.transaction.v1",
            content_type: "application/json", app_id: "requeue-test", delivery_mode: 2,
            timestamp: 1700000000,
            headers: {
                "x-error-reason": $reason, "x-error-detail": ("detail of " + $id),
                "x-failed-service": "ledger-worker", "x-attempts": 4,
                "x-first-failed-at": "2026-01-01T00:00:00.000Z", "x-last-error-reason": $reason,
                "x-origin-queue": $origin, "x-custom": ("kept-" + $id)
            }
        }}')"
    call POST "/exchanges/$vh/amq.default/publish" "$body" | jq -e '.routed == true' >/dev/null
}

ids_in() { peek "$1" | jq -c '[.[].properties.message_id] | sort'; }

# Bodies: plain JSON, bytes that are not UTF-8, and multi-byte UTF-8.
b1="$(printf '{"transaction_id":"t-1","amount":100}' | base64 -w0)"
b2="$(printf '\x00\xff\xfe{not json\x80' | base64 -w0)"
b3="$(printf '{"note":"caf\xc3\xa9 \xe2\x82\xac"}' | base64 -w0)"

declare_queue "$main"
declare_queue "$err"
park m1 malformed_json "$b1"
park m2 schema_invalid "$b2"
park m3 database_unavailable "$b3"

# 1. Dry runs move nothing.
"$requeue" --api "$api" --vhost "$vhost" --dry-run "$err" >"$work/dry.out"
check "dry run lists all three with their reasons" \
    grep -q "would move 3 to $main, would keep 0" "$work/dry.out"
check "dry run prints each message's id, reason and attempts" \
    grep -q "message_id=m2 reason=schema_invalid attempts=4" "$work/dry.out"
"$requeue" --api "$api" --vhost "$vhost" --dry-run --reason schema_invalid "$err" >"$work/dry2.out"
check "dry run with --reason counts one to move, two to keep" \
    grep -q "would move 1 to $main, would keep 2" "$work/dry2.out"
check "dry run warns that the malformed and schema-invalid ones would be parked again" \
    grep -q "note: 2 of the messages to move were parked for malformed_json" "$work/dry.out"
"$requeue" --api "$api" --vhost "$vhost" --dry-run --reason database_unavailable "$err" >"$work/dry3.out"
check "no such warning when only curable reasons move" bash -c "! grep -q '^note:' '$work/dry3.out'"
check "after the dry runs the error queue still holds all three" \
    test "$(ids_in "$err")" = '["m1","m2","m3"]'
check "after the dry runs the main queue is empty" test "$(ids_in "$main")" = '[]'

# 2. --reason moves only the matching message.
"$requeue" --api "$api" --vhost "$vhost" --reason schema_invalid "$err" >"$work/one.out"
check "--reason reports one moved, two kept" grep -q "moved 1 to $main, kept 2 in $err" "$work/one.out"
check "--reason: the main queue holds m2 only" test "$(ids_in "$main")" = '["m2"]'
check "--reason: the error queue holds m1 and m3 (no marker left)" test "$(ids_in "$err")" = '["m1","m3"]'
peek "$main" >"$work/main1.json"
check "the moved body is byte for byte the original" \
    test "$(jq -r '.[0].payload' "$work/main1.json")" = "$b2"
check "the moved message keeps its properties and other headers" jq -e '.[0].properties |
    .message_id == "m2" and .correlation_id == "corr-m2" and .type == "ledger.transaction.v1"
    and .content_type == "application/json" and .delivery_mode == 2 and .timestamp == 1700000000
    and .headers["x-custom"] == "kept-m2"' "$work/main1.json"
check "the moved message has x-attempts 0, the requeue headers and no failure headers" \
    jq -e '.[0].properties.headers | .["x-attempts"] == 0 and .["x-requeued-count"] == 1
    and (.["x-requeued-at"] | type == "string") and .["x-requeued-reason"] == "schema_invalid"
    and ([has("x-error-reason", "x-error-detail", "x-failed-service", "x-origin-queue",
              "x-first-failed-at", "x-last-error-reason")] | any | not)' "$work/main1.json"
peek "$err" >"$work/err1.json"
check "kept messages are unchanged: bodies and failure headers" jq -e --arg b1 "$b1" --arg b3 "$b3" '
    (map({(.properties.message_id): .}) | add) as $m
    | $m.m1.payload == $b1 and $m.m3.payload == $b3
    and $m.m1.properties.headers["x-error-reason"] == "malformed_json"
    and $m.m3.properties.headers["x-attempts"] == 4
    and $m.m3.properties.headers["x-origin-queue"] != null' "$work/err1.json"

# 3. An unroutable target aborts loudly and loses nothing.
mkdir "$work/tmp"
set +e
TMPDIR="$work/tmp" "$requeue" --api "$api" --vhost "$vhost" --to "requeue_test.missing.$$" "$err" >"$work/bad.out" 2>&1
rc=$?
set -e
check "an unroutable target exits 1 and says so" \
    bash -c "[ $rc -eq 1 ] && grep -q 'not routed' '$work/bad.out'"
check "after the abort the error queue still holds m1 and m3" test "$(ids_in "$err")" = '["m1","m3"]'
check "the aborted batch is saved in the backup file it names" \
    bash -c "f=\$(ls '$work'/tmp/requeue-*.jsonl) && grep -q '\"m1\"' \"\$f\" && grep -q \"\$f\" '$work/bad.out'"

# 4. --limit caps the count.
"$requeue" --api "$api" --vhost "$vhost" --limit 1 "$err" >"$work/limit.out"
check "--limit 1 moves one and keeps one" grep -q "moved 1 to $main, kept 1 in $err" "$work/limit.out"

# 5. No --reason moves everything that is left.
"$requeue" --api "$api" --vhost "$vhost" "$err" >"$work/all.out"
check "without --reason the rest moves" grep -q "moved 1 to $main, kept 0 in $err" "$work/all.out"
check "the error queue is empty" test "$(ids_in "$err")" = '[]'
check "the main queue holds all three" test "$(ids_in "$main")" = '["m1","m2","m3"]'
check "every body arrived byte for byte" jq -e --arg b1 "$b1" --arg b2 "$b2" --arg b3 "$b3" '
    (map({(.properties.message_id): .payload}) | add) == {m1: $b1, m2: $b2, m3: $b3}' <(peek "$main")

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
