"""What users do today, the good way: Python requests with a Session (kept-alive connection),
one token fetched at the start. Usage: requests_session.py SECONDS, with SAPWF_BENCH_TOKEN_URL,
SAPWF_BENCH_API_URL, SAPWF_BENCH_CLIENT_ID and SAPWF_BENCH_CLIENT_SECRET in the environment
(and SAPWF_BENCH_CA_FILE, the CA to trust, for an https emulator).
Prints: starts N seconds S failures N ended T"""
import os
import sys
import time

import requests

seconds = float(sys.argv[1])
api = os.environ["SAPWF_BENCH_API_URL"] + "/v1/workflow-instances"
auth = (os.environ["SAPWF_BENCH_CLIENT_ID"], os.environ["SAPWF_BENCH_CLIENT_SECRET"])

# An https emulator's CA, given with each call: requests lets REQUESTS_CA_BUNDLE and
# CURL_CA_BUNDLE in the environment override a Session's own verify.
verify = os.environ.get("SAPWF_BENCH_CA_FILE") or True
session = requests.Session()
token = session.post(os.environ["SAPWF_BENCH_TOKEN_URL"], auth=auth,
                     data={"grant_type": "client_credentials"}, verify=verify).json()["access_token"]
session.headers["Authorization"] = "Bearer " + token
body = {"definitionId": "simple", "context": {"order": 1}}

starts = failures = 0
start = time.monotonic()
while time.monotonic() - start < seconds:
    if session.post(api, json=body, verify=verify).status_code == 201:
        starts += 1
    else:
        failures += 1
ended = time.monotonic()  # CLOCK_MONOTONIC, as bench/turns.c logs its slots
print("starts %d seconds %.3f failures %d ended %.6f"
      % (starts, ended - start, failures, ended))
