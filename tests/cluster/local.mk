# `make check-cluster`: the Pacemaker cluster tests (tests/cluster/), apart
# from `make check` (they boot a real two-node cluster with fencing and take
# a few minutes).  quickstart.sh installs pacemaker, corosync,
# corosync-qdevice, corosync-qnetd, resource-agents (ocf-tester) and nftables.
# Like check-linux and check-xen, the target passes only if every test ran
# and passed: a test that skipped (no root, no /dev/kvm, a tool missing)
# fails it (tests/cluster/check-summary.sh), in CI and everywhere else -
# whoever asks for check-cluster asks for the cluster to be tested.
CLUSTER_TESTS = tests/cluster/t-ocf-agent.sh tests/cluster/t-cluster.sh
EXTRA_DIST += $(CLUSTER_TESTS) tests/cluster/cluster.sh tests/cluster/node-init.sh \
	tests/cluster/fence_hrtest tests/cluster/console-collect.py tests/cluster/check-summary.sh \
	contrib/ocf/hareplicate contrib/ocf/README.md

check-cluster: all
	$(MAKE) $(AM_MAKEFLAGS) check TESTS='$(CLUSTER_TESTS)'
	@$(SHELL) $(srcdir)/tests/cluster/check-summary.sh $(CLUSTER_TESTS)
.PHONY: check-cluster
