#!/bin/bash
# mkinitramfs.sh OUT - the two initramfs images of `make check-linux`, from
# installed Debian packages and this build tree ($top_builddir):
#
#   OUT/guest.cpio  the Linux guest: busybox-static, the kernel's virtio
#                   modules and an /init that loads them, then prints a
#                   numbered heartbeat on the console (guest-init.sh)
#   OUT/host.cpio   the nested test host: busybox-static, bash, coreutils'
#                   date, iproute2's ip, openssl, the kvm/kvm-amd/kvm-intel
#                   modules of the running kernel's version, the project's
#                   binaries, tests and test guests (with their libraries),
#                   the guest kernel and guest.cpio in /guest, and
#                   host-init.sh as /init (it runs /test.sh, see nested.sh);
#                   qemu-system-x86_64 with its firmware (t-multiboot's
#                   reference, KVM-accelerated in the nested host)
#
# KVER picks the kernel (default: the newest /boot/vmlinuz-*).
set -eu
OUT=$1
: "${top_builddir:=$(cd "$(dirname "$0")/../.." && pwd)}"
: "${top_srcdir:=$top_builddir}"
HERE="$top_srcdir/tests/linux"
KVER=${KVER:-$(ls /boot/vmlinuz-* 2>/dev/null | sed 's|/boot/vmlinuz-||' | sort -V | tail -1)}
[ -n "$KVER" ] && [ -r "/boot/vmlinuz-$KVER" ] || { echo "mkinitramfs: no /boot/vmlinuz-*" >&2; exit 1; }
MOD=/lib/modules/$KVER/kernel
# the static busybox of busybox-static: the guest image has no libc
BB=/bin/busybox
[ -x "$BB" ] && ! ldd "$BB" >/dev/null 2>&1 || { echo "mkinitramfs: no static /bin/busybox (install busybox-static)" >&2; exit 1; }

rm -rf "$OUT/guest" "$OUT/host"
mkdir -p "$OUT/guest" "$OUT/host"

skeleton() {
	mkdir -p "$1"/{bin,sbin,dev,proc,sys,tmp,run,etc,root,lib64,usr/bin,usr/lib/x86_64-linux-gnu}
	mknod -m 600 "$1/dev/console" c 5 1
	mknod -m 666 "$1/dev/null" c 1 3
	cp "$BB" "$1/bin/busybox"
	for a in $("$BB" --list); do [ -e "$1/bin/$a" ] || ln -s busybox "$1/bin/$a"; done
	ln -s lib/x86_64-linux-gnu "$1/usr/lib64"
	ln -s usr/lib "$1/lib"
}
cpio_of() { (cd "$1" && find . | cpio -o -H newc --quiet); }

# ---- the guest
skeleton "$OUT/guest"
install -m 755 "$HERE/guest-init.sh" "$OUT/guest/init"
# the kernel's own virtio-mmio, -net and -blk modules (t-linux-devices.sh)
mkdir -p "$OUT/guest/lib/modules/virtio"
for m in drivers/virtio/virtio drivers/virtio/virtio_ring drivers/virtio/virtio_mmio \
	net/core/failover drivers/net/net_failover drivers/net/virtio_net drivers/block/virtio_blk; do
	[ -f "$MOD/$m.ko" ] && cp "$MOD/$m.ko" "$OUT/guest/lib/modules/virtio/"
done
cpio_of "$OUT/guest" >"$OUT/guest.cpio"

# ---- the nested host
H=$OUT/host
skeleton "$H"
mkdir -p "$H/lib/modules/$KVER" "$H/guest" "$H/hr/tests/guests" "$H/hr/tests/linux"
for m in virt/lib/irqbypass drivers/crypto/ccp/ccp arch/x86/kvm/kvm arch/x86/kvm/kvm-amd \
	arch/x86/kvm/kvm-intel drivers/net/veth net/llc/llc net/802/stp net/bridge/bridge drivers/net/tun; do
	[ -f "$MOD/$m.ko" ] && cp "$MOD/$m.ko" "$H/lib/modules/$KVER/"
done
cp "/boot/vmlinuz-$KVER" "$H/guest/vmlinuz"
cp "$OUT/guest.cpio" "$H/guest/guest.cpio"
# the database guest of t-linux-db.sh (its initramfs, its disk, e2fsck)
"$HERE/mkdbimage.sh" "$OUT" "$H/guest"
cp "$top_builddir/hareplicate" "$top_builddir/hareplicated" "$H/hr/"
for t in t-kvm t-kvm-cpuid t-linux-boot hello-send t-diskwalk; do cp "$top_builddir/tests/$t" "$H/hr/tests/"; done
cp "$top_builddir"/tests/guests/*.elf "$H/hr/tests/guests/"
cp "$top_srcdir"/tests/*.sh "$H/hr/tests/"
cp "$HERE"/*.sh "$H/hr/tests/linux/"
# busybox sh runs its own applets before PATH and its date has no %N: the
# tests run under bash with coreutils' date; ip netns needs iproute2's ip
# (each replaces busybox's applet link: remove the link first, not overwrite busybox)
for b in /bin/bash /bin/date /bin/ip /usr/bin/openssl /usr/bin/setsid; do
	[ -x "$b" ] && rm -f "$H/bin/${b##*/}" && cp "$b" "$H/bin/"
done
# the project's #!/bin/sh tests too (tests/lib.sh wants date's %N)
ln -sf bash "$H/bin/sh"
# QEMU (KVM-accelerated inside) for the reference side of tests/t-multiboot.sh
QEMU_BIN=$(command -v qemu-system-x86_64 || true)
if [ -n "$QEMU_BIN" ]; then
	cp "$QEMU_BIN" "$H/usr/bin/"
	mkdir -p "$H/usr/share"
	for d in /usr/share/qemu /usr/share/seabios; do [ -d "$d" ] && cp -rL "$d" "$H/usr/share/"; done
fi
for b in "$top_builddir/hareplicate" "$top_builddir/hareplicated" "$top_builddir"/tests/t-kvm \
	"$top_builddir"/tests/t-kvm-cpuid "$top_builddir"/tests/hello-send \
	"$top_builddir"/tests/t-linux-boot /bin/bash /bin/date /bin/ip /usr/bin/openssl $QEMU_BIN; do
	[ -x "$b" ] && ldd "$b" | awk '/=>/ {print $3} /ld-linux/ {print $1}'
done | sort -u | while read -r l; do
	[ -f "$l" ] || continue
	case "$l" in
	*/ld-linux-x86-64.so.2) cp -L "$l" "$H/lib64/" ;;
	*) cp -L "$l" "$H/usr/lib/x86_64-linux-gnu/" ;;
	esac
done
[ -d /usr/lib/ssl ] && mkdir -p "$H/usr/lib/ssl" && cp -rL /usr/lib/ssl/openssl.cnf "$H/usr/lib/ssl/" 2>/dev/null || true
install -m 755 "$HERE/host-init.sh" "$H/init"
cpio_of "$H" >"$OUT/host.cpio"
echo "mkinitramfs: kernel $KVER, host.cpio $(($(stat -c %s "$OUT/host.cpio") >> 20)) MiB, guest.cpio $(($(stat -c %s "$OUT/guest.cpio") >> 10)) KiB"
