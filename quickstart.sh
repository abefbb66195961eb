#!/bin/sh
# quickstart.sh - the README's two commands, on a fresh Debian 12 as root.
#   ./quickstart.sh         install what is missing, build, run the main job
#   ./quickstart.sh check   install what is missing, build, run the whole test suite
set -eu
cd "$(dirname "$0")"

PKGS="build-essential autoconf automake pkg-config libevent-dev libprotobuf-c-dev
protobuf-c-compiler libxxhash-dev qemu-system-x86 iproute2 procps psmisc python3
clang-format git libssl-dev liburing-dev sqlite3 e2fsprogs linux-image-amd64 busybox-static
pacemaker pacemaker-cli-utils corosync corosync-qdevice corosync-qnetd resource-agents
nftables libxml2-utils util-linux man-db groff-base acpica-tools
libxen-dev xen-hypervisor-4.17-amd64 xen-utils-4.17 cpio"

missing=""
for p in $PKGS; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing="$missing $p"
done
if [ -n "$missing" ]; then
	echo "quickstart: installing:$missing"
	[ "$(id -u)" = 0 ] || { echo "quickstart: run as root to install packages" >&2; exit 1; }
	DEBIAN_FRONTEND=noninteractive apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing >/dev/null
fi

[ -x configure ] || autoreconf -fi >/dev/null
[ -f Makefile ] || ./configure -q
make -s -j"$(nproc)"

case "${1:-run}" in
check)
	make -s -j"$(nproc)" check
	;;
run)
	exec ./hareplicate drill
	;;
*)
	echo "usage: $0 [check]" >&2
	exit 2
	;;
esac
