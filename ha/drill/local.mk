# ha/drill: `hareplicate drill`, failover drills in network namespaces (built into
# the hareplicate command; see ha/drill/drill.h for what each file holds)
hareplicate_SOURCES += \
	ha/drill/drill.h ha/drill/cmd-drill.c ha/drill/drill-run.c \
	ha/drill/drill-hosts.c ha/drill/drill-status.c ha/drill/drill-report.c \
	ha/drill/drill-net.c ha/drill/drill-world.c ha/drill/drill-console.c \
	ha/drill/drill-tap.h ha/drill/drill-relay.c ha/drill/drill-killpoint.c \
	ha/drill/drill-restart.c ha/drill/drill-reprotect.c ha/drill/drill-witness.c \
	ha/drill/drill-guestnet.c

# `make drill-soak`: SOAK_N drills, each a scenario drawn from SOAK_SEED (not
# part of `make check`; about 15 s a drill).  SOAK_WITNESS=1 runs them with
# a witness (drill --witness, witness-down among the draws);
# `make drill-soak-witness` is the same.
SOAK_N = 200
SOAK_SEED = 1
SOAK_WITNESS =
drill-soak: hareplicate hareplicated $(guests_elfs)
	w=; case "$(SOAK_WITNESS)" in ""|0) ;; *) w=--witness ;; esac; \
	./hareplicate drill --soak $(SOAK_N) --seed $(SOAK_SEED) --epochs 40 --memory 128M $$w
drill-soak-witness: hareplicate hareplicated $(guests_elfs)
	$(MAKE) $(AM_MAKEFLAGS) drill-soak SOAK_WITNESS=1
.PHONY: drill-soak drill-soak-witness
