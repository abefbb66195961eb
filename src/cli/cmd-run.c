/* cmd-run.c - `hareplicate run` and `hareplicate restore`: one local VM in the foreground. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cmd.h"
#include "cli/vmhost.h"
#include "disk/spec.h"
#include "common/log.h"
#include "common/util.h"

static const char run_help[] =
    "Run a multiboot v1, Linux bzImage or PVH guest on /dev/kvm with its console\n"
    "(COM1) on stdout\n"
    "and stdin fed to it.  The exit status is the guest's: (value << 1) | 1 for a\n"
    "write to the isa-debug-exit port 0xf4 (as QEMU), 0 for shutdown, 124 for\n"
    "--timeout, 70 for a VM error, 2 for bad usage.\n\n"
    "  --kernel FILE      guest image (multiboot v1 ELF / a.out kludge, Linux bzImage\n"
    "                     such as /boot/vmlinuz-*, or PVH ELF)\n"
    "  --initrd FILE      initial ramdisk of a Linux bzImage\n"
    "  --memory SIZE      guest RAM, e.g. 256M, 16G (default 256M; backed lazily)\n"
    "  --vcpus N          vCPUs, 1..64 (default 1)\n"
    "  --append CMDLINE   guest command line (multiboot: after the kernel path, as\n"
    "                     GRUB/QEMU; Linux: e.g. \"console=ttyS0\")\n"
    "  --name NAME        VM name for logs (default vm)\n"
    "  --net tap=IFNAME[,mac=MAC]\n"
    "                     a virtio-net device (virtio-mmio, announced to the guest\n"
    "                     as virtio_mmio.device=4K@0xd0000000:5) on the existing\n"
    "                     TAP interface IFNAME; MAC default 52:54:00 + a hash of\n"
    "                     the name\n"
    "  --disk PATH[,readonly][,serial=S]\n"
    "                     a virtio-blk device (virtio-mmio, after the net device)\n"
    "                     on the raw image PATH (a file or block device whose size\n"
    "                     is a multiple of 512 bytes); readonly: the guest cannot\n"
    "                     write it; serial: its ID (1..20 printable characters).\n"
    "                     Up to 4, in the order given (Linux: /dev/vda, vdb, ...)\n"
    "  --snapshot FILE    where snapshots go: `kill -USR1 PID` writes one and the\n"
    "                     guest goes on; `kill -USR2 PID` writes one and exits 0\n"
    "                     (disk contents are not in a snapshot)\n"
    "  --timeout SECONDS  stop after this long (exit status 124)\n"
    "  -v, --verbose      debug logging\n\n"
    "Resume a snapshot in a new process with `hareplicate restore FILE`.\n";

static const char restore_help[] =
    "Resume a VM from a snapshot file written by `hareplicate run --snapshot` (the\n"
    "file is verified, version and checksums, before anything runs).  The console\n"
    "and exit status behave as for `run`.\n\n"
    "  --snapshot FILE    where further snapshots go (SIGUSR1 / SIGUSR2, as for run)\n"
    "  --name NAME        VM name for logs (default: the name in the snapshot)\n"
    "  --net tap=IFNAME   the TAP its network device (if it had one) uses now\n"
    "  --timeout SECONDS  stop after this long (exit status 124)\n"
    "  -v, --verbose      debug logging\n\n"
    "Exit status as for run: the guest's, 124, 70 for a VM error (a snapshot it\n"
    "cannot use), 2 for bad usage.\n";

static int run_or_restore(int argc, char **argv, int restore)
{
	const struct hr_cmd *self = restore ? &hr_cmd_restore : &hr_cmd_run;
	static const struct option longopts[] = {
	    {"kernel", required_argument, NULL, 'k'},
	    {"initrd", required_argument, NULL, 'i'},
	    {"memory", required_argument, NULL, 'm'},
	    {"vcpus", required_argument, NULL, 'c'},
	    {"append", required_argument, NULL, 'a'},
	    {"name", required_argument, NULL, 'n'},
	    {"snapshot", required_argument, NULL, 's'},
	    {"timeout", required_argument, NULL, 't'},
	    {"verbose", no_argument, NULL, 'v'},
	    {"net", required_argument, NULL, 'N'},
	    {"disk", required_argument, NULL, 'D'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	static struct hr_disk_arg disk_args[HR_MAX_DISKS];
	static struct hr_disk_spec disks[HR_MAX_DISKS];
	struct hr_vm_config cfg = {.name = "vm", .mem_bytes = 256ull << 20, .nr_vcpus = 1};
	struct hr_vmhost_opts opts = {0};
	uint64_t n;
	int verbose = 0, c;

	optind = 1;
	while ((c = getopt_long(argc, argv, "vh", longopts, NULL)) != -1) {
		switch (c) {
		case 'k':
			cfg.kernel_path = optarg;
			break;
		case 'i':
			cfg.initrd_path = optarg;
			break;
		case 'm':
			if (hr_parse_size(optarg, &cfg.mem_bytes) < 0) {
				fprintf(stderr,
					"hareplicate %s: bad --memory '%s' (e.g. 256M, 2G)\n",
					self->name, optarg);
				return 2;
			}
			break;
		case 'c':
			if (hr_parse_count(optarg, 1, HR_MAX_VCPUS, &n) < 0) {
				fprintf(stderr, "hareplicate %s: bad --vcpus '%s' (1..%d)\n",
					self->name, optarg, HR_MAX_VCPUS);
				return 2;
			}
			cfg.nr_vcpus = (unsigned)n;
			break;
		case 'a':
			cfg.cmdline = optarg;
			break;
		case 'n':
			cfg.name = optarg;
			break;
		case 's':
			opts.snapshot_path = optarg;
			break;
		case 't':
			/* a bare number is seconds; 500ms, 1.5s also do */
			if (hr_parse_duration_unit_us(optarg, 1000000, &n) < 0 || !n) {
				fprintf(stderr,
					"hareplicate %s: bad --timeout '%s' (seconds, e.g. 10, "
					"1.5s, 500ms)\n",
					self->name, optarg);
				return 2;
			}
			opts.timeout_s = (double)n / 1e6;
			break;
		case 'N': {
			char why[160];
			if (hr_net_spec_check(optarg, why, sizeof(why)) < 0) {
				fprintf(stderr, "hareplicate %s: bad --net '%s': %s\n", self->name,
					optarg, why);
				return 2;
			}
			cfg.options = optarg;
			break;
		}
		case 'D': {
			char why[160];
			if (restore) {
				fprintf(stderr,
					"hareplicate restore: --disk is for run only (a snapshot "
					"holds no disk contents)\n");
				return 2;
			}
			if (cfg.nr_disks == HR_MAX_DISKS) {
				fprintf(stderr, "hareplicate run: more than %d --disk\n",
					HR_MAX_DISKS);
				return 2;
			}
			if (hr_disk_arg_parse(optarg, &disk_args[cfg.nr_disks], why, sizeof(why)) <
			    0) {
				fprintf(stderr,
					"hareplicate run: bad --disk '%s': %s (want "
					"PATH[,readonly][,serial=S])\n",
					optarg, why);
				return 2;
			}
			disks[cfg.nr_disks] = disk_args[cfg.nr_disks].spec;
			cfg.nr_disks++;
			cfg.disks = disks;
			break;
		}
		case 'v':
			verbose++;
			break;
		case 'h':
			return hr_cmd_help(self);
		default:
			return hr_cmd_usage(self);
		}
	}
	hr_log_init("hareplicate", 1, verbose);
	if (restore) {
		if (optind != argc - 1 || cfg.kernel_path || cfg.initrd_path) {
			fprintf(stderr, "hareplicate restore: give exactly one snapshot FILE\n");
			return hr_cmd_usage(self);
		}
		return hr_vmhost_main(&cfg, argv[optind], &opts);
	}
	if (!cfg.kernel_path || optind != argc) {
		fprintf(stderr, "hareplicate run: --kernel FILE is required\n");
		return hr_cmd_usage(self);
	}
	return hr_vmhost_main(&cfg, NULL, &opts);
}

static int cmd_run(int argc, char **argv)
{
	return run_or_restore(argc, argv, 0);
}

static int cmd_restore(int argc, char **argv)
{
	return run_or_restore(argc, argv, 1);
}

const struct hr_cmd hr_cmd_run = {
    "run",
    "--kernel FILE [--initrd FILE] [--memory SIZE] [--vcpus N] [--append CMDLINE] [--net SPEC] "
    "[--disk PATH[,readonly][,serial=S]]... [--snapshot FILE]",
    run_help, cmd_run};
const struct hr_cmd hr_cmd_restore = {"restore",
				      "FILE [--net SPEC] [--snapshot FILE] [--timeout SECONDS]",
				      restore_help, cmd_restore};
