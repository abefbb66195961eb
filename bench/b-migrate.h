/*
 * b-migrate.h - shared by b-migrate.c (the scenarios, ours, the table) and
 * b-migrate-qemu.c (QEMU's side of each scenario).
 */
#ifndef HR_BENCH_B_MIGRATE_H
#define HR_BENCH_B_MIGRATE_H

#include <stdint.h>

#define MEM_BYTES (1ull << 30)
#define LINK_BPS  125000000ull /* 1 Gbit/s in bytes/s */
#define NS_IP_A	  "10.77.0.1"
#define NS_IP_B	  "10.77.0.2"

/* One migration's figures. */
struct result {
	int done;		  /* 1: completed; 0: did not finish within the bound; -1: error */
	double total_ms, down_ms; /* downtime in ms */
	double bytes;
	/* ours only */
	uint64_t rounds, live_bytes, epoch_bytes, final_pages, nr_epochs, e0_pages;
	double e0_pause_ms;
	/* QEMU only: query-migrate's ram.dirty-sync-count, ram.normal, ram.duplicate */
	double syncs, normal, duplicate;
	/* the guest's dirty rate while migrated (pages/s): ours, the mean of the live
	 * rounds' dirty_rate; QEMU, the last ram.dirty-pages-rate it showed */
	double dirty_rate;
	char why[160];
};

/* b-migrate.c: the run's settings and the 1 Gbit/s namespaces */
extern double bound_s, warm_s;
extern const char *qemu_bin, *kernel;
extern char ns_a[32], ns_b[32];
extern int nsfd_a, nsfd_b, netns_up;
/* A TCP port nobody listens on at ip, in the namespace nsfd (-1: ours). */
int free_port(int nsfd, const char *ip);

/* b-migrate-qemu.c: migrate memwalk (cmdline) from one QEMU to another over
 * loopback or, capped, from ns_a to ns_b; max_bw: QEMU's max-bandwidth
 * (0: its default). */
void qemu_run(const char *cmdline, int capped, uint64_t max_bw, struct result *res);

#endif
