#!/bin/sh
# /init of the database guest of t-linux-db.sh (mkdbimage.sh): Debian's own
# virtio and ext4 modules, eth0 at db_ip= (kernel command line), /dev/vda's
# ext4 on /mnt (sqlite3 and the database, /db/kv.db), and a line server on
# TCP port 7000 (busybox nc, one db-serve per connection).  A client's HALT
# stops it: the file system is unmounted (DB-UMOUNT rc=N on the console)
# and the guest reboots, which ends its VM.
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev 2>/dev/null
for m in virtio/virtio_ring virtio/virtio virtio/virtio_mmio virtio/failover virtio/net_failover \
	virtio/virtio_net virtio/virtio_blk ext4/crc16 ext4/mbcache ext4/jbd2 ext4/crc32c_generic ext4/ext4; do
	insmod "/lib/modules/$m.ko" 2>/dev/null
done
ip=${db_ip:-10.77.0.2}
ifconfig lo 127.0.0.1 up
ifconfig eth0 "$ip" netmask 255.255.255.0 up
if ! mount -t ext4 /dev/vda /mnt; then
	echo "DB-FAIL mount /dev/vda: $(dmesg | grep -i -E 'ext4|vda' | tail -3)"
	reboot -f
fi
# rollback journal (DELETE) and synchronous=FULL: a commit is on the disk
# (fsync'd) when sqlite3 exits 0
mode=$(chroot /mnt /usr/bin/sqlite3 -batch /db/kv.db "PRAGMA journal_mode=DELETE; PRAGMA synchronous=FULL;
	CREATE TABLE IF NOT EXISTS kv(k INTEGER PRIMARY KEY, v TEXT NOT NULL);" 2>&1)
echo "DB-UP ip=$ip journal=$mode eth0=$([ -e /sys/class/net/eth0 ] && echo yes || echo no) up=$(cut -d' ' -f1 /proc/uptime)"
nc -ll -p 7000 -e /db-serve &
nc=$!
while [ ! -e /tmp/halt ]; do sleep 0.5; done
kill "$nc" 2>/dev/null
sleep 1
sync
umount /mnt
echo "DB-UMOUNT rc=$? up=$(cut -d' ' -f1 /proc/uptime)"
reboot -f
