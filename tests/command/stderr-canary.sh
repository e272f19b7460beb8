#!/bin/sh
# A CLI that quotes what it was given on stderr, then fails.
echo "error: cannot decrypt CANARY-in-stderr for $1" >&2
exit 3
