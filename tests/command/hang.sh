#!/bin/sh
# A CLI that never answers (a network call that hangs).
exec sleep "${1:-600}"
