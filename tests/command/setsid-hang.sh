#!/bin/sh
# A CLI that starts a helper in a session of its own (out of its process group), then never
# answers: at the deadline or on SIGTERM the helper must go with it.
setsid sleep "${1:-600}" &
# Hang only once the helper has left the CLI's session (field 6 of /proc/<pid>/stat).
read -r _ _ _ _ _ own _ < /proc/$$/stat
while read -r _ _ _ _ _ session _ < /proc/$!/stat && [ "$session" = "$own" ]; do :; done
exec sleep "${1:-600}"
