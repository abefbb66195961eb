#!/bin/bash
# mkinitramfs.sh OUT - the images of `make check-xen`, from installed Debian
# packages (xen-hypervisor-4.17-amd64, xen-utils-4.17, busybox-static,
# linux-image-amd64) and this build tree ($top_builddir):
#
#   OUT/xen          Debian's hypervisor, unpacked (QEMU boots it multiboot)
#   OUT/domU.cpio    the protected domU: busybox and the counter (domu-init.sh)
#   OUT/dom0/        dom0's root: busybox, bash, the Xen tools (xl, xenstored,
#                    xen-init-dom0) with their libraries, the xen-evtchn /
#                    privcmd / gntdev / gntalloc / xenfs modules, the project's
#                    binaries and Xen tests (and bench/b-xen-*.sh with
#                    libxl-save-helper and xenconsoled for them), and in /guest the domU kernel
#                    (the same Debian kernel, booted PVH), domU.cpio and its
#                    xl config; dom0-init.sh is /init.  check-xen.sh packs it.
set -eu
OUT=$1
: "${top_builddir:=$(cd "$(dirname "$0")/../.." && pwd)}"
: "${top_srcdir:=$top_builddir}"
HERE="$top_srcdir/tests/xen"
KVER=${KVER:-$(ls /boot/vmlinuz-* 2>/dev/null | sed 's|/boot/vmlinuz-||' | sort -V | tail -1)}
XEN_GZ=$(ls /boot/xen-4.*-amd64.gz 2>/dev/null | sort -V | tail -1)
XBIN=$(ls -d /usr/lib/xen-4.*/bin 2>/dev/null | sort -V | tail -1)
BB=/bin/busybox
[ -n "$KVER" ] && [ -r "/boot/vmlinuz-$KVER" ] || { echo "mkinitramfs: no /boot/vmlinuz-*" >&2; exit 1; }
[ -n "$XEN_GZ" ] || { echo "mkinitramfs: no /boot/xen-4.*-amd64.gz (install xen-hypervisor-4.17-amd64)" >&2; exit 1; }
[ -n "$XBIN" ] && [ -x "$XBIN/xl" ] || { echo "mkinitramfs: no xl (install xen-utils-4.17)" >&2; exit 1; }
[ -x "$BB" ] && ! ldd "$BB" >/dev/null 2>&1 || { echo "mkinitramfs: no static /bin/busybox (install busybox-static)" >&2; exit 1; }
[ -x "$top_builddir/tests/xen/t-xen-backend" ] && [ -x "$top_builddir/tests/linux/console-sink" ] ||
	{ echo "mkinitramfs: build with --with-xen first (make check-xen builds the tests)" >&2; exit 1; }
MOD=/lib/modules/$KVER/kernel

zcat "$XEN_GZ" >"$OUT/xen"
rm -rf "$OUT/domU" "$OUT/dom0"
mkdir -p "$OUT/domU" "$OUT/dom0"

skeleton() {
	mkdir -p "$1"/{bin,sbin,dev,proc,sys,tmp,run,etc,root,lib64,usr/bin,usr/sbin,usr/lib/x86_64-linux-gnu}
	cp "$BB" "$1/bin/busybox"
	for a in $("$BB" --list); do [ -e "$1/bin/$a" ] || ln -s busybox "$1/bin/$a"; done
	ln -s lib/x86_64-linux-gnu "$1/usr/lib64"
	ln -s usr/lib "$1/lib"
}
cpio_of() { (cd "$1" && find . | cpio -o -H newc --quiet); }
# copy binaries with every library they load (ldd), keeping the paths
with_libs() {
	local root=$1
	shift
	for b in "$@"; do
		ldd "$b" 2>/dev/null | awk '/=> \// {print $3} /^\t\/lib64\/ld-linux/ {print $1}'
	done | sort -u | while read -r l; do
		case "$l" in
		*/ld-linux-x86-64.so.2) cp -L "$l" "$root/lib64/" ;;
		*) cp -L "$l" "$root/usr/lib/x86_64-linux-gnu/" ;;
		esac
	done
}

# ---- the protected domU
skeleton "$OUT/domU"
install -m 755 "$HERE/domu-init.sh" "$OUT/domU/init"
cpio_of "$OUT/domU" >"$OUT/domU.cpio"

# ---- dom0
D=$OUT/dom0
skeleton "$D"
mkdir -p "$D/lib/modules/$KVER" "$D/guest" "$D/hr/tests/xen" "$D$XBIN" "$D/etc/xen" \
	"$D/var/lib/xen" "$D/var/log/xen"
for m in drivers/xen/xen-evtchn drivers/xen/xen-privcmd drivers/xen/xen-gntdev \
	drivers/xen/xen-gntalloc drivers/xen/xenfs/xenfs; do
	cp "$MOD/$m.ko" "$D/lib/modules/$KVER/"
done
for t in xl xenstored xen-init-dom0 xenstore-control; do cp "$XBIN/$t" "$D$XBIN/"; done
for t in xenstore-read xenstore-write xenstore-ls xenstore-list; do
	[ -e "/usr/bin/$t" ] && cp -P "/usr/bin/$t" "$D/usr/bin/"
done
[ -e /usr/bin/xenstore ] && cp /usr/bin/xenstore "$D/usr/bin/"
cp /etc/xen/xl.conf "$D/etc/xen/" 2>/dev/null || true
# the tests run under bash with coreutils' date (busybox's has no %N),
# openssl for the daemons' certificates, util-linux's setsid
for b in /bin/bash /bin/date /usr/bin/openssl /usr/bin/setsid; do
	rm -f "$D/bin/${b##*/}" && cp "$b" "$D/bin/"
done
[ -d /usr/lib/ssl ] && mkdir -p "$D/usr/lib/ssl" && cp -L /usr/lib/ssl/openssl.cnf "$D/usr/lib/ssl/" 2>/dev/null || true
# the replica shell's default kernel (xen.c): the dom0 kernel in /boot
mkdir -p "$D/boot"
cp "/boot/vmlinuz-$KVER" "$D/boot/vmlinuz-$KVER"
cp "$top_builddir/hareplicate" "$top_builddir/hareplicated" "$D/hr/"
# the test programs at their build-tree paths under /hr (HR_XEN_BINS adds
# more, e.g. a benchmark: HR_XEN_BINS=bench/b-tls)
BINS="tests/xen/t-xen-backend tests/xen/t-xen-refusals tests/t-engine tests/t-migrate-engine ${HR_XEN_BINS:-}"
for b in $BINS; do
	[ -x "$top_builddir/$b" ] || { echo "mkinitramfs: $b not built" >&2; exit 1; }
	mkdir -p "$D/hr/$(dirname "$b")"
	cp "$top_builddir/$b" "$D/hr/$b"
done
cp "$top_builddir/tests/linux/console-sink" "$D/hr/tests/xen/"
# the replica shell where the backend looks for it (make passes the path)
if [ -n "${HR_XEN_SHELL_PATH:-}" ]; then
	mkdir -p "$D$(dirname "$HR_XEN_SHELL_PATH")"
	cp "$top_builddir/src/backends/xen/xen-replica-shell.elf" "$D$HR_XEN_SHELL_PATH"
fi
cp "$HERE"/*.sh "$D/hr/tests/xen/"
# bench-xen (bench/b-xen-remus.sh): xl remus needs libxl's save helper (the
# stream is written by it, on both sides) and a console reader that drains
# the domains' rings: xenconsoled, which that script starts itself
mkdir -p "$D/hr/bench" "$D/var/log/xen/console"
cp "$top_srcdir/bench/b-xen-remus.sh" "$top_srcdir/bench/b-xen-hr.sh" "$top_srcdir/bench/b-xen-hr-plain.sh" "$D/hr/bench/"
for t in libxl-save-helper xenconsoled; do cp "$XBIN/$t" "$D$XBIN/"; done
cp "$top_srcdir/tests/lib.sh" "$D/hr/tests/"
with_libs "$D" "$XBIN/xl" "$XBIN/libxl-save-helper" "$XBIN/xenconsoled" "$XBIN/xenstored" "$XBIN/xen-init-dom0" "$XBIN/xenstore-control" \
	/usr/bin/xenstore /bin/bash /bin/date /usr/bin/openssl "$top_builddir/hareplicate" "$top_builddir/hareplicated" \
	$(for b in $BINS; do echo "$top_builddir/$b"; done)
# xl's pthread_cancel loads libgcc_s at run time (not in ldd)
cp -L /lib/x86_64-linux-gnu/libgcc_s.so.1 "$D/usr/lib/x86_64-linux-gnu/"
cp "/boot/vmlinuz-$KVER" "$D/guest/vmlinuz"
cp "$OUT/domU.cpio" "$D/guest/domU.cpio"
cat >"$D/guest/hrxt.cfg" <<'EOC'
name = "hrxt"
type = "pvh"
kernel = "/guest/vmlinuz"
ramdisk = "/guest/domU.cpio"
extra = "console=hvc0 quiet loglevel=0 HRCOUNT_MS=100"
memory = 128
vcpus = 1
tsc_mode = "native"
on_crash = "preserve"
EOC
install -m 755 "$HERE/dom0-init.sh" "$D/init"
