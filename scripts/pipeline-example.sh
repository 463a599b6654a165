#!/usr/bin/env bash
# A release pipeline driving one upgrade through Mycelia Ops' REST API, with curl and python3:
# create it, run the pre-upgrade checks (each automated step on a worker, polled until it ends),
# complete the manual pre-upgrade steps with a note, start, deploy, poll the deploy run, begin
# monitoring, and print the outcome.
#
#   MYCELIA_URL=http://127.0.0.1:8000 MYCELIA_TOKEN=myc_... scripts/pipeline-example.sh
#
# Settings (environment variables):
#   MYCELIA_URL       where Mycelia Ops answers (default http://127.0.0.1:8000)
#   MYCELIA_TOKEN     a release manager's API token (required)
#   ENVIRONMENT       the environment's key (default staging; see GET /api/environments)
#   TYPE              minor or major (default minor); VERSION_FROM / VERSION_TO (1.4.2 -> 1.5.0)
#   TITLE             the upgrade's title
#   MANUAL_NOTE       the note kept with each manual step the pipeline completes
#   POLL_SECONDS      between polls of a run (default 1); RUN_TIMEOUT_SECONDS per run (300)
#
# Exit status: 0 once the upgrade is being monitored; 1 when a check or the deploy did not
# pass, or the API refused something (its sentence is printed). Progress goes to stderr; the
# outcome, one JSON object, to stdout.
set -euo pipefail

MYCELIA_URL="${MYCELIA_URL:-http://127.0.0.1:8000}"
MYCELIA_URL="${MYCELIA_URL%/}"
: "${MYCELIA_TOKEN:?Set MYCELIA_TOKEN to an API token of a release manager}"
ENVIRONMENT="${ENVIRONMENT:-staging}"
TYPE="${TYPE:-minor}"
VERSION_FROM="${VERSION_FROM:-1.4.2}"
VERSION_TO="${VERSION_TO:-1.5.0}"
TITLE="${TITLE:-Release ${VERSION_TO} to ${ENVIRONMENT}}"
MANUAL_NOTE="${MANUAL_NOTE:-Confirmed by the release pipeline}"
POLL_SECONDS="${POLL_SECONDS:-1}"
RUN_TIMEOUT_SECONDS="${RUN_TIMEOUT_SECONDS:-300}"

NL=$'\n'
say() { printf '%s\n' "$*" >&2; }

# api METHOD PATH [JSON]: the response body on stdout; an answer of 400 or more prints the
# API's sentence and exits 1.
api() {
  local method="$1" path="$2" body="${3:-}" out status
  local args=(-sS -X "$method" -H "Authorization: Bearer ${MYCELIA_TOKEN}"
    -H "Accept: application/json" -w '\n%{http_code}')
  if [[ -n "$body" ]]; then
    args+=(-H "Content-Type: application/json" --data-binary "$body")
  fi
  out="$(curl "${args[@]}" "${MYCELIA_URL}${path}")"
  status="${out##*"$NL"}"
  out="${out%"$NL"*}"
  if ((status >= 400)); then
    say "!! ${method} ${path} answered ${status}: $(printf '%s' "$out" | error_of)"
    exit 1
  fi
  printf '%s' "$out"
}

# json EXPR: evaluate a Python expression over the JSON document on stdin (as `d`); lists are
# printed one item a line.
json() {
  python3 -c '
import json, sys
d = json.load(sys.stdin)
value = eval(sys.argv[1], {"d": d})
if isinstance(value, list):
    print("\n".join(str(v) for v in value))
elif isinstance(value, (dict, bool)) or value is None:
    print(json.dumps(value))
else:
    print(value)
' "$1"
}

# error_of: the API's sentence from an error body (or the start of whatever came instead).
error_of() {
  python3 -c '
import json, sys
raw = sys.stdin.read()
try:
    print(json.loads(raw).get("error", raw[:500]))
except (ValueError, AttributeError):
    print(raw[:500])
'
}

# body KEY=VALUE... KEY:=JSON...: a JSON object; `=` gives a string, `:=` a raw JSON value.
body() {
  python3 -c '
import json, sys
out = {}
for arg in sys.argv[1:]:
    key, sep, value = arg.partition("=")
    if key.endswith(":"):
        out[key[:-1]] = json.loads(value)
    else:
        out[key] = value
print(json.dumps(out))
' "$@"
}

# wait_run ID: poll the run until it has finished; exit 1 unless it passed.
wait_run() {
  local id="$1" run status deadline=$((SECONDS + RUN_TIMEOUT_SECONDS))
  while :; do
    run="$(api GET "/api/runs/${id}")"
    if [[ "$(printf '%s' "$run" | json 'd["finished"]')" == "true" ]]; then
      break
    fi
    if ((SECONDS > deadline)); then
      say "!! run #${id} has not finished after ${RUN_TIMEOUT_SECONDS} s"
      exit 1
    fi
    sleep "$POLL_SECONDS"
  done
  status="$(printf '%s' "$run" | json 'd["status"]')"
  say "   run #${id} $(printf '%s' "$run" | json 'd["title"]'): ${status} ($(printf '%s' "$run" | json 'd["reason"]'))"
  if [[ "$status" != "passed" ]]; then
    say "!! run #${id} did not pass; its output ends with:"
    printf '%s' "$run" | json 'd["output_tail"][-2000:]' >&2
    exit 1
  fi
}

# 1. Create the upgrade (a draft with the playbook's checklist), its window starting now.
window_start="$(python3 -c 'import datetime as dt; print(dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"))')"
created="$(api POST /api/upgrades "$(body type="$TYPE" title="$TITLE" environment="$ENVIRONMENT" \
  version_from="$VERSION_FROM" version_to="$VERSION_TO" window_start="$window_start" \
  window_minutes:=30)")"
id="$(printf '%s' "$created" | json 'd["id"]')"
say "== upgrade #${id} created: $(printf '%s' "$created" | json 'd["url"]')"

# 2. The pre-upgrade checklist: run every automated step, complete the manual ones.
# "<step id> <kind>" for each open step of the pre-upgrade phases
steps="$(api GET "/api/upgrades/${id}" | json '[str(s["id"]) + " " + s["kind"]
  for p in d["phases"] if p["stage"] == "pre" for s in p["steps"] if s["status"] == "open"]')"
runs=()
while read -r step kind; do
  [[ -z "$step" ]] && continue
  if [[ "$kind" == "manual" ]]; then
    api POST "/api/upgrades/${id}/steps/${step}/complete" "$(body note="$MANUAL_NOTE")" >/dev/null
  else
    run="$(api POST "/api/upgrades/${id}/steps/${step}/run" | json 'd["run"]["id"]')"
    runs+=("$run")
  fi
done <<<"$steps"
say "== ${#runs[@]} pre-upgrade checks queued; manual steps completed"
for run in "${runs[@]}"; do
  wait_run "$run"
done

# 3. Start the deployment (the pre-upgrade gate must be clear), then deploy.
api POST "/api/upgrades/${id}/actions/start" >/dev/null
say "== deployment started"
deploy="$(api POST "/api/upgrades/${id}/actions/deploy")"
deploy_run="$(printf '%s' "$deploy" | json 'd["run"]["id"]')"
say "== deploy queued as run #${deploy_run}"
wait_run "$deploy_run"

# 4. The deploy passed: begin monitoring, and report the outcome.
api POST "/api/upgrades/${id}/actions/begin_monitoring" >/dev/null
outcome="$(api GET "/api/upgrades/${id}")"
say "== monitoring; next: $(printf '%s' "$outcome" | json 'd["allowed_actions"]' | paste -sd, -)"
printf '%s' "$outcome" | json \
  '{k: d[k] for k in ("id", "status", "deploy_state", "deployed_version", "url")}'
