#!/usr/bin/env bash
# What users do today from a shell: one token fetched with curl, then one `curl` command per
# start. Usage: curl_loop.sh SECONDS, environment as requests_session.py.
# Prints: starts N seconds S failures N
# The secret and the token go to curl in files (-K, -H @file), never on a command line.
set -u
seconds=$1
api="$SAPWF_BENCH_API_URL/v1/workflow-instances"
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
umask 077
printf 'user = "%s:%s"\n' "$SAPWF_BENCH_CLIENT_ID" "$SAPWF_BENCH_CLIENT_SECRET" > "$dir/auth"
token=$(curl -sS -K "$dir/auth" -d grant_type=client_credentials "$SAPWF_BENCH_TOKEN_URL" \
  | sed -E 's/.*"access_token":"([^"]+)".*/\1/')
printf 'Authorization: Bearer %s\n' "$token" > "$dir/bearer"
body='{"definitionId":"simple","context":{"order":1}}'
starts=0 failures=0
start=$EPOCHREALTIME
end=$(awk -v s="$start" -v d="$seconds" 'BEGIN { printf "%.6f", s + d }')
while [[ ${EPOCHREALTIME/./} -lt ${end/./} ]]; do
  status=$(curl -sS -o /dev/null -w '%{http_code}' \
    -H @"$dir/bearer" -H 'Content-Type: application/json' \
    -H 'Accept: application/json' --data "$body" "$api")
  if [ "$status" = 201 ]; then starts=$((starts + 1)); else failures=$((failures + 1)); fi
done
elapsed=$(awk -v s="$start" -v e="$EPOCHREALTIME" 'BEGIN { printf "%.3f", e - s }')
echo "starts $starts seconds $elapsed failures $failures"
