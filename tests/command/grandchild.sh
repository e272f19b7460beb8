#!/bin/sh
# A CLI that starts a helper which keeps stdout open, prints its answer and exits.
sleep "${1:-600}" &
printf '{"token":"CANARY-grandchild"}'
