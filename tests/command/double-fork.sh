#!/bin/sh
# A CLI that leaves helpers holding stdout, each in a session of its own, then prints its
# answer and exits:
# - a daemon made the classic way, by a double fork: the middle process exits at once, so the
#   helper is nobody's child (init's, or the plugin's as subreaper) before the CLI exits;
# - a helper that waits on a child of its own: that child becomes an orphan only once the
#   helper itself has been killed.
setsid sh -c 'sleep "$1" & exit 0' daemon "${1:-600}" &
wait $!
ready=/tmp/double-fork-ready.$$
mkfifo "$ready"
setsid sh -c 'sleep "$1" & echo > "$2"; wait' waiter "${1:-600}" "$ready" &
read -r _ < "$ready"
rm -f "$ready"
printf '{"token":"CANARY-double-fork"}'
