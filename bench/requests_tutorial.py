"""What users do today, the way the well-known tutorial shows it: for each start, fetch a
token, then POST the start, with plain requests.post (a new connection each time). Usage and
environment as requests_session.py. Prints: starts N seconds S failures N
ended T"""
import os
import sys
import time

import requests

seconds = float(sys.argv[1])
api = os.environ["SAPWF_BENCH_API_URL"] + "/v1/workflow-instances"
token_url = os.environ["SAPWF_BENCH_TOKEN_URL"]
auth = (os.environ["SAPWF_BENCH_CLIENT_ID"], os.environ["SAPWF_BENCH_CLIENT_SECRET"])
body = {"definitionId": "simple", "context": {"order": 1}}
# An https emulator's CA (SAPWF_BENCH_CA_FILE), else the system's.
verify = os.environ.get("SAPWF_BENCH_CA_FILE") or True

starts = failures = 0
start = time.monotonic()
while time.monotonic() - start < seconds:
    token = requests.post(token_url, auth=auth, data={"grant_type": "client_credentials"},
                          verify=verify).json()["access_token"]
    r = requests.post(api, json=body, headers={"Authorization": "Bearer " + token},
                      verify=verify)
    if r.status_code == 201:
        starts += 1
    else:
        failures += 1
ended = time.monotonic()  # CLOCK_MONOTONIC, as bench/turns.c logs its slots
print("starts %d seconds %.3f failures %d ended %.6f"
      % (starts, ended - start, failures, ended))
