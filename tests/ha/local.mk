# `make check-ha` (not part of make check: about 3 minutes of real faults):
# no false failover while a healthy primary is stopped or starved for less
# than the failure timeout (SIGSTOP, a cgroup CPU quota, busy loops at nice
# -20), and the liveness figures of docs/design.md.  Needs root and the
# cgroup v1 cpu controller; .ci/run runs it.
HA_TESTS = tests/ha/t-ha-stall.sh tests/ha/t-ha-loss.sh
EXTRA_DIST += $(HA_TESTS)

check-ha: all
	$(MAKE) $(AM_MAKEFLAGS) check TESTS='$(HA_TESTS)'
.PHONY: check-ha
