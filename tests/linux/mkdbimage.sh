#!/bin/bash
# mkdbimage.sh OUT DEST - the database guest of t-linux-db.sh, from
# installed Debian packages (mkinitramfs.sh calls it; DEST is the nested
# host's /guest, its root DEST/..):
#
#   DEST/db.cpio        the guest's initramfs: OUT/guest's busybox and
#                       virtio modules, the kernel's ext4 modules (crc16,
#                       mbcache, jbd2, crc32c), db-init.sh as /init and
#                       db-serve.sh (one client connection of the server)
#   DEST/db-disk.img.gz its disk: ext4 made by `mkfs.ext4 -d` from sqlite3
#                       and its libraries (ldd) and an empty /db
#   DEST/../usr/sbin/e2fsck with its libraries, for the test's fsck
set -eu
OUT=$1
DEST=$2
: "${top_srcdir:=$(cd "$(dirname "$0")/../.." && pwd)}"
HERE="$top_srcdir/tests/linux"
KVER=${KVER:-$(ls /boot/vmlinuz-* 2>/dev/null | sed 's|/boot/vmlinuz-||' | sort -V | tail -1)}
MOD=/lib/modules/$KVER/kernel
SQLITE=$(command -v sqlite3 || true)
MKFS=$(command -v mkfs.ext4 || echo /sbin/mkfs.ext4)
E2FSCK=$(command -v e2fsck || echo /sbin/e2fsck)
if [ -z "$SQLITE" ] || [ ! -x "$MKFS" ] || [ ! -x "$E2FSCK" ]; then
	echo "mkdbimage: no sqlite3, mkfs.ext4 or e2fsck: no database guest" >&2
	exit 0
fi
libs() { ldd "$@" | awk '/=>/ {print $3} /ld-linux/ {print $1}' | sort -u; }

# ---- the initramfs
G=$OUT/dbguest
rm -rf "$G" "$OUT/dbroot"
cp -a "$OUT/guest" "$G"
rm -f "$G/init"
install -m 755 "$HERE/db-init.sh" "$G/init"
install -m 755 "$HERE/db-serve.sh" "$G/db-serve"
mkdir -p "$G/mnt" "$G/lib/modules/ext4"
for m in lib/crc16 fs/mbcache fs/jbd2/jbd2 crypto/crc32c_generic fs/ext4/ext4; do
	[ -f "$MOD/$m.ko" ] && cp "$MOD/$m.ko" "$G/lib/modules/ext4/"
done
(cd "$G" && find . | cpio -o -H newc --quiet) >"$DEST/db.cpio"

# ---- the disk: sqlite3 at its own paths, chroot-able
R=$OUT/dbroot
mkdir -p "$R/usr/bin" "$R/db" "$R/tmp"
cp "$SQLITE" "$R/usr/bin/sqlite3"
for l in $(libs "$SQLITE"); do
	mkdir -p "$R$(dirname "$l")"
	cp -L "$l" "$R$l"
done
rm -f "$OUT/db-disk.img"
truncate -s 48M "$OUT/db-disk.img"
"$MKFS" -q -F -O ^metadata_csum -L hrdb -d "$R" "$OUT/db-disk.img"
gzip -c "$OUT/db-disk.img" >"$DEST/db-disk.img.gz"

# ---- e2fsck on the nested host
H=$DEST/..
mkdir -p "$H/usr/sbin"
cp "$E2FSCK" "$H/usr/sbin/e2fsck"
for l in $(libs "$E2FSCK"); do
	case "$l" in
	*/ld-linux-x86-64.so.2) [ -e "$H/lib64/${l##*/}" ] || cp -L "$l" "$H/lib64/" ;;
	*) cp -L "$l" "$H/usr/lib/x86_64-linux-gnu/" ;;
	esac
done
echo "mkdbimage: db.cpio $(($(stat -c %s "$DEST/db.cpio") >> 10)) KiB, db-disk.img.gz $(($(stat -c %s "$DEST/db-disk.img.gz") >> 10)) KiB"
