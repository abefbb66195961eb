# `make check-cluster`: the Pacemaker cluster tests (tests/cluster/), apart
# from `make check` (they boot a real two-node cluster with fencing and take
# a few minutes).  quickstart.sh installs pacemaker, corosync,
# corosync-qdevice, corosync-qnetd, resource-agents (ocf-tester) and nftables.
CLUSTER_TESTS = tests/cluster/t-ocf-agent.sh tests/cluster/t-cluster.sh
EXTRA_DIST += $(CLUSTER_TESTS) tests/cluster/cluster.sh tests/cluster/node-init.sh \
	tests/cluster/fence_hrtest tests/cluster/console-collect.py contrib/ocf/hareplicate \
	contrib/ocf/README.md

check-cluster: all
	$(MAKE) $(AM_MAKEFLAGS) check TESTS='$(CLUSTER_TESTS)'
.PHONY: check-cluster
