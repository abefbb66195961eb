# cluster.sh - a real Pacemaker cluster on this machine, sourced by the
# tests in tests/cluster/ (after tests/lib.sh).
#
# Network: a "world" namespace holds a bridge, corosync-qnetd (the arbiter)
# and whatever the outside world runs (the console collector); each node is
# a namespace on that bridge (10.N.M.1, .2; the world is .254).  A node is a
# process tree started by node-init.sh in its own mount and UTS namespace
# and its own cgroup v2 (fence_hrtest kills that cgroup): corosync (knet,
# no crypto), corosync-qdevice (votes through qnetd, wait_for_all) and
# pacemakerd, each node with private /etc/corosync, /var/lib/pacemaker,
# /var/lib/corosync, /run and /dev/shm.  Pacemaker starts on a pre-written
# CIB (short dc-deadtime, fencing on, one fence device per node).
#
# Use: cl_init NAME; cl_node_start a; cl_node_start b; cl_wait_online 60 a b;
# cl_exec a crm_mon -1; ...; cleanup (on_exit) tears everything down.
# Needs: T (lib.sh), CL_SRC (this folder).

cl_init() {
	CL_ID=$1
	CL_NET=10.$((218 + $$ % 30)).$(($$ % 250))
	CL_W="$CL_ID-w"
	CL_DIR=$T/cluster
	CL_CG=/sys/fs/cgroup/unified/$CL_ID
	mkdir -p "$CL_DIR" && chmod 755 "$T" "$CL_DIR" || return 1
	on_exit "cl_teardown"
	[ -w /sys/fs/cgroup/unified ] || { echo "# no writable cgroup v2 at /sys/fs/cgroup/unified" >&2; return 1; }
	mkdir "$CL_CG" || return 1
	ip netns add "$CL_W" || return 1
	ip -n "$CL_W" link set lo up &&
		ip -n "$CL_W" link add br0 type bridge &&
		ip -n "$CL_W" addr add "$CL_NET.254/24" dev br0 &&
		ip -n "$CL_W" link set br0 up || return 1
	# the overlays node-init.sh puts over /usr/sbin and resource.d
	mkdir -p "$CL_DIR/sbin" "$CL_DIR/ocf/hareplicate" || return 1
	cp "$CL_SRC/fence_hrtest" "$CL_DIR/sbin/" || return 1
	[ -z "${CL_AGENT:-}" ] || cp "$CL_AGENT" "$CL_DIR/ocf/hareplicate/vm" || return 1
	chmod 755 "$CL_DIR/sbin" "$CL_DIR/ocf" "$CL_DIR/ocf/hareplicate"
	CL_NODES=""
}

# cl_node_add NAME NUM: the node's namespace, cgroup and files (not started).
cl_node_add() {
	_ns="$CL_ID-$1"
	_d=$CL_DIR/$1
	ip netns add "$_ns" || return 1
	ip -n "$CL_W" link add "v$1" type veth peer name eth0 netns "$_ns" &&
		ip -n "$CL_W" link set "v$1" master br0 && ip -n "$CL_W" link set "v$1" up &&
		ip -n "$_ns" addr add "$CL_NET.$2/24" dev eth0 && ip -n "$_ns" link set eth0 up &&
		ip -n "$_ns" link set lo up || return 1
	mkdir -p "$CL_CG/$1" "$_d/etc-corosync" "$_d/var-lib-corosync" \
		"$_d/var-lib-pacemaker/cib" "$_d/var-lib-pacemaker/pengine" \
		"$_d/var-lib-pacemaker/blackbox" "$_d/var-lib-pacemaker/cores" || return 1
	chown -R hacluster:haclient "$_d/var-lib-pacemaker" && chmod 750 "$_d/var-lib-pacemaker/cib"
	chmod 755 "$_d"
	cat >"$_d/env" <<ENV
NODE=$1
SBIN_OVERLAY=$CL_DIR/sbin
OCF_OVERLAY=$CL_DIR/ocf
ENV
	eval "CL_IP_$1=$CL_NET.$2 CL_NUM_$1=$2"
	CL_NODES="$CL_NODES $1"
}

# cl_write_config: corosync.conf on every node, the first CIB (call after
# every cl_node_add).  CL_TOKEN_MS (default 1000) is corosync's token timeout.
cl_write_config() {
	_nl=""
	for _cn in $CL_NODES; do
		eval "_ip=\$CL_IP_$_cn _num=\$CL_NUM_$_cn"
		_nl="$_nl	node {
		ring0_addr: $_ip
		name: $_cn
		nodeid: $_num
	}
"
	done
	for _cn in $CL_NODES; do
		cat >"$CL_DIR/$_cn/etc-corosync/corosync.conf" <<CONF
totem {
	version: 2
	cluster_name: $CL_ID
	transport: knet
	crypto_cipher: none
	crypto_hash: none
	token: ${CL_TOKEN_MS:-1000}
}
nodelist {
$_nl}
quorum {
	provider: corosync_votequorum
	wait_for_all: 1
	device {
		model: net
		votes: 1
		net {
			host: $CL_NET.254
			algorithm: ffsplit
			tls: off
		}
	}
}
logging {
	to_logfile: yes
	logfile: $CL_DIR/$_cn/corosync.log
	to_syslog: no
	to_stderr: no
	timestamp: hires
}
CONF
		cl_cib >"$CL_DIR/$_cn/var-lib-pacemaker/cib/cib.xml" || return 1
		chown hacluster:haclient "$CL_DIR/$_cn/var-lib-pacemaker/cib/cib.xml"
		chmod 600 "$CL_DIR/$_cn/var-lib-pacemaker/cib/cib.xml"
	done
}

# The first CIB: the cluster options and one fence device per node (each
# may run anywhere but on the node it fences), plus $CL_RESOURCES.
cl_cib() {
	_fence=""
	_cons=""
	for _f in $CL_NODES; do
		_fence="$_fence      <primitive id=\"fence-$_f\" class=\"stonith\" type=\"fence_hrtest\">
        <instance_attributes id=\"fence-$_f-ia\">
          <nvpair id=\"fence-$_f-hosts\" name=\"pcmk_host_list\" value=\"$_f\"/>
          <nvpair id=\"fence-$_f-cg\" name=\"cgroup_base\" value=\"$CL_CG\"/>
          <nvpair id=\"fence-$_f-log\" name=\"log\" value=\"$CL_DIR/fence.log\"/>
        </instance_attributes>
        <operations>
          <op id=\"fence-$_f-mon\" name=\"monitor\" interval=\"60s\"/>
        </operations>
      </primitive>
"
		_cons="$_cons      <rsc_location id=\"fence-$_f-not-self\" rsc=\"fence-$_f\" node=\"$_f\" score=\"-INFINITY\"/>
"
	done
	cat <<CIB
<cib crm_feature_set="3.16.1" validate-with="pacemaker-3.8" epoch="1" num_updates="0" admin_epoch="0">
  <configuration>
    <crm_config>
      <cluster_property_set id="cib-bootstrap-options">
        <nvpair id="opt-dc-deadtime" name="dc-deadtime" value="2s"/>
        <nvpair id="opt-stonith" name="stonith-enabled" value="true"/>
        <nvpair id="opt-stonith-timeout" name="stonith-timeout" value="20s"/>
        <nvpair id="opt-no-quorum" name="no-quorum-policy" value="stop"/>
        <nvpair id="opt-recheck" name="cluster-recheck-interval" value="1min"/>
        <nvpair id="opt-join-finalization" name="join-finalization-timeout" value="10s"/>
      </cluster_property_set>
    </crm_config>
    <nodes/>
    <resources>
$_fence${CL_RESOURCES:-}    </resources>
    <constraints>
$_cons${CL_CONSTRAINTS:-}    </constraints>
  </configuration>
  <status/>
</cib>
CIB
}

cl_qnetd_start() {
	mkdir -p "$CL_DIR/qnetd"
	# its own mount namespace: qnetd's socket and lock go to a private /run
	ip netns exec "$CL_W" unshare --mount --propagation private sh -c '
		mount -t tmpfs tmpfs /run && mkdir -p /run/corosync-qnetd &&
		chown coroqnetd:coroqnetd /run/corosync-qnetd 2>/dev/null
		exec corosync-qnetd -f -s off -l '"$CL_NET.254"' -d' >>"$CL_DIR/qnetd/out" 2>&1 &
	CL_QNETD_PID=$!
}

# cl_node_start NAME: boot the node (in its cgroup); returns once corosync
# answers.
cl_node_start() {
	_d=$CL_DIR/$1
	rm -f "$_d/ready"
	echo 0 >"$CL_CG/$1/cgroup.freeze" # a node frozen before it was fenced boots thawed
	sh -c 'echo $$ >"$1/cgroup.procs" && exec nsenter --net=/run/netns/"$2" \
		unshare --mount --uts --propagation private sh "$3" "$4"' \
		sh "$CL_CG/$1" "$CL_ID-$1" "$CL_SRC/node-init.sh" "$_d" >>"$_d/node.out" 2>&1 &
	eval "CL_PID_$1=$!"
	wait_true 20 test -f "$_d/ready"
}

# cl_exec NAME CMD...: run CMD on that node (its namespaces).
cl_exec() {
	eval "_p=\$CL_PID_$1"
	shift
	nsenter -t "$_p" -n -m -u "$@"
}

# Processes of a node ("" when it is down).
cl_node_procs() { cat "$CL_CG/$1/cgroup.procs" 2>/dev/null; }

# cl_wait_online SECONDS NODE...: crm_mon on the first says every one is online.
cl_wait_online() {
	_s=$1
	shift
	_first=$1
	wait_true "$_s" cl_all_online "$_first" "$@"
}
cl_all_online() {
	_o=$(cl_exec "$1" crm_mon -1 2>/dev/null | sed -n 's/^ *\* Online: \[ \(.*\) \]/\1/p')
	shift
	for _cn; do
		case " $_o " in *" $_cn "*) ;; *) return 1 ;; esac
	done
}

# cl_kill_node NAME: as fencing does (every process of its cgroup).
cl_kill_node() {
	echo 0 >"$CL_CG/$1/cgroup.freeze" 2>/dev/null
	echo 1 >"$CL_CG/$1/cgroup.kill" 2>/dev/null
	wait_true 10 cl_node_down "$1"
}
cl_node_down() { [ ! -s "$CL_CG/$1/cgroup.procs" ]; }

cl_teardown() {
	for _cn in $CL_NODES; do
		[ -d "$CL_CG/$_cn" ] && cl_kill_node "$_cn"
		[ -d "$CL_CG/$_cn" ] && wait_true 10 rmdir "$CL_CG/$_cn"
		ip netns del "$CL_ID-$_cn" 2>/dev/null
	done
	[ -n "${CL_QNETD_PID:-}" ] && kill "$CL_QNETD_PID" 2>/dev/null &&
		wait_true 5 sh -c "! kill -0 $CL_QNETD_PID"
	[ -n "${CL_QNETD_PID:-}" ] && kill -9 "$CL_QNETD_PID" 2>/dev/null
	ip netns del "$CL_W" 2>/dev/null
	[ -d "$CL_CG" ] && wait_true 10 rmdir "$CL_CG"
	CL_NODES=""
}
