#!/bin/sh
# A CLI killed by a signal.
kill -9 $$
