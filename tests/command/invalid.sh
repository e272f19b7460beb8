#!/bin/sh
# A CLI that exits 0 with output that is not what the operator said it prints.
printf '{"password": CANARY-invalid'
