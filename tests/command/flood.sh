#!/bin/sh
# A CLI that prints without end.
exec yes CANARY-flood
