"""Prints the roles moto's STS has handed out, one `<role ARN> <session name>` per line.

Usage: assumed_roles.py <endpoint>. Reads moto's state dump (/moto-api/data.json), which is
what a test can see in place of CloudTrail.
"""
import json
import sys
import urllib.request

with urllib.request.urlopen(sys.argv[1] + "/moto-api/data.json") as answer:
    state = json.load(answer)
for role in state.get("sts", {}).get("AssumedRole", []):
    print(role["role_arn"], role["session_name"])
