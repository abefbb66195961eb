#!/bin/sh
# One client connection of the database guest's line server (db-init.sh),
# stdin and stdout the socket.  Requests, one a line, keys decimal:
#   PUT K V   -> "OK K" only after sqlite3 committed the row (exit 0)
#   GET K     -> "VAL K V" ("VAL K" when there is no row K)
#   STAT      -> "STAT rows min max"
#   HALT      -> "BYE", then the guest unmounts its disk and reboots
q() { chroot /mnt /usr/bin/sqlite3 -batch /db/kv.db "PRAGMA synchronous=FULL; $1"; }
num() { case $1 in '' | *[!0-9]*) return 1 ;; esac; }
while read -r cmd key val; do
	case $cmd in
	PUT)
		case $val in '' | *[!A-Za-z0-9-]*) echo "ERR value"; continue ;; esac
		num "$key" || { echo "ERR key"; continue; }
		if q "INSERT OR REPLACE INTO kv VALUES($key, '$val');" >/dev/null 2>&1; then
			echo "OK $key"
		else
			echo "ERR $key"
		fi
		;;
	GET)
		num "$key" || { echo "ERR key"; continue; }
		echo "VAL $key $(q "SELECT v FROM kv WHERE k = $key;" 2>&1)"
		;;
	STAT) echo "STAT $(q "SELECT count(*), ifnull(min(k), 0), ifnull(max(k), 0) FROM kv;" 2>&1 | tr '|' ' ')" ;;
	HALT)
		echo BYE
		touch /tmp/halt
		exit 0
		;;
	*) echo "ERR request" ;;
	esac
done
