#!/bin/sh
# Prints the environment it was given, as dotenv: what the CLI sees.
env | grep -v '^PWD=' | sort
