#!/bin/sh
# A CLI that starts a helper in a session of its own (setsid: out of the CLI's process group, so
# killing the group misses it) which keeps stdout open, then prints its answer and exits.
setsid sleep "${1:-600}" &
# Exit only once the helper has left the CLI's session (field 6 of /proc/<pid>/stat), so that
# the helper really is outside the group whatever the scheduling.
read -r _ _ _ _ _ own _ < /proc/$$/stat
while read -r _ _ _ _ _ session _ < /proc/$!/stat && [ "$session" = "$own" ]; do :; done
printf '{"token":"CANARY-setsid"}'
