#!/usr/bin/env bash
# A smoke test of a doq deployment on Kubernetes (docs/kubernetes.md): create a queue, send,
# receive, kill the leader pod, send and receive again through the same client Service.
#
#   deploy/smoke-test.sh [NAMESPACE] [SERVICE]      (defaults: doq doq)
#
# Needs kubectl with access to the namespace. Requests run from a short-lived curl pod inside the
# cluster, so they go through the `doq` Service exactly as your workers' requests do. It creates
# and finally deletes a queue named smoke-<random>; nothing else is changed, except that the
# leader pod is deleted once (the StatefulSet recreates it with its volume).
set -euo pipefail

NAMESPACE="${1:-doq}"
SERVICE="${2:-doq}"
CURL_IMAGE="${CURL_IMAGE:-curlimages/curl:8.10.1}"
KUBECTL="${KUBECTL:-kubectl}"
BASE="http://${SERVICE}.${NAMESPACE}.svc:8000"
QUEUE="smoke-${RANDOM}${RANDOM}"
FAILOVER_WAIT_S="${FAILOVER_WAIT_S:-60}"

say() { printf 'smoke: %s\n' "$*" >&2; }
fail() { say "FAILED: $*"; exit 1; }

# call METHOD PATH [JSON]: prints the response body, then the status code on its own last line.
call() {
  local method="$1" path="$2" body="${3:-}"
  local args=(-sS -m 10 -X "$method" -H 'Accept: application/json, application/problem+json'
    -w '\n%{http_code}')
  if [[ -n "$body" ]]; then
    args+=(-H 'Content-Type: application/json' --data "$body")
  fi
  "$KUBECTL" -n "$NAMESPACE" run "doq-smoke-${RANDOM}" --rm -i --quiet --restart=Never \
    --image="$CURL_IMAGE" --command -- curl "${args[@]}" "${BASE}${path}"
}

# expect CODE METHOD PATH [JSON]: the call must answer CODE; prints the body.
expect() {
  local code="$1"
  shift
  local answer status
  answer="$(call "$@")" || fail "$* did not run"
  status="$(tail -n 1 <<<"$answer")"
  [[ "$status" == "$code" ]] || fail "$* answered $status, not $code: $answer"
  sed '$d' <<<"$answer"
}

leader_pod() {
  expect 200 GET /API/v1/cluster/servers |
    tr '{' '\n' | grep '"is_leader": *true' | sed 's/.*"id": *"\([^"]*\)".*/\1/' | head -n 1
}

say "namespace ${NAMESPACE}, service ${SERVICE}, queue ${QUEUE}"
expect 200 POST /API/v1/queues "{\"name\": \"${QUEUE}\", \"type\": \"delayed\"}" >/dev/null
expect 200 POST "/API/v1/queues/${QUEUE}/messages" '{"content": "before", "priority": 1}' \
  >/dev/null
got="$(expect 200 GET "/API/v1/queues/${QUEUE}/messages?ack=true")"
[[ "$got" == *'"before"'* ]] || fail "received $got"
say "sent and received through the leader"

leader="$(leader_pod)"
[[ -n "$leader" ]] || fail "no leader in /API/v1/cluster/servers"
say "deleting the leader pod ${leader}"
"$KUBECTL" -n "$NAMESPACE" delete pod "$leader" --grace-period=0 --force --wait=false >/dev/null

deadline=$((SECONDS + FAILOVER_WAIT_S))
until answer="$(call POST "/API/v1/queues/${QUEUE}/messages" \
  '{"content": "after", "priority": 1}')" && [[ "$(tail -n 1 <<<"$answer")" == 200 ]]; do
  ((SECONDS < deadline)) || fail "no write accepted within ${FAILOVER_WAIT_S} s of the failover"
  sleep 1
done
got="$(expect 200 GET "/API/v1/queues/${QUEUE}/messages?ack=true")"
[[ "$got" == *'"after"'* ]] || fail "received $got"
say "new leader: $(leader_pod); sent and received after the failover"

expect 200 DELETE "/API/v1/queues/${QUEUE}" >/dev/null
say "passed"
