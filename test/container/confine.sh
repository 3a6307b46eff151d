#!/bin/sh
# The container contract without a container engine. Run as root, as PID 1 of fresh pid and mount
# namespaces (unshare --pid --fork --mount-proc --propagation private):
#   confine.sh WRITABLE_DIR COMMAND [ARG...]
# Makes every mount read-only except WRITABLE_DIR (compose's read_only: true plus the /data
# volume), then execs COMMAND as uid/gid 65534 with no supplementary groups, no capabilities in
# any set (cap_drop: [ALL]) and no_new_privs (no-new-privileges:true). exec keeps COMMAND PID 1.
set -eu
writable=$1
shift

# The writable dir becomes its own mount first, so making its parent read-only leaves it alone.
mount --bind "$writable" "$writable"
# Field 5 of mountinfo is the mount point. /proc and /sys stay as they are (a container has them).
for mountpoint in $(awk '{ print $5 }' /proc/self/mountinfo); do
  case "$mountpoint" in
    "$writable" | /proc | /proc/* | /sys | /sys/*) continue ;;
  esac
  mount -o remount,bind,ro "$mountpoint" 2>/dev/null || echo "confine: cannot make $mountpoint read-only" >&2
done
# What must hold whatever happened above: root, /tmp and /dev/shm read-only, the data dir not.
for dir in / /tmp /var/tmp /dev/shm; do
  if [ -d "$dir" ] && [ -w "$dir" ]; then echo "confine: $dir is still writable" >&2; exit 97; fi
done
if [ ! -w "$writable" ]; then echo "confine: $writable is not writable" >&2; exit 97; fi

exec setpriv --reuid=65534 --regid=65534 --clear-groups --inh-caps=-all --bounding-set=-all --no-new-privs -- "$@"
