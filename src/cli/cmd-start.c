/* cmd-start.c - `hareplicate start`: protect a VM (this host primary, --peer backup). */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "backends/backend.h"
#include "cli/cmd.h"
#include "disk/spec.h"
#include "cli/ctl.h"
#include "common/conf.h"
#include "common/util.h"
#include "common/kv.h"

static const char start_help[] =
    "Start VM on this host as the primary, continuously replicated to the\n"
    "hareplicated on --peer, which holds the backup.  hareplicated must run on\n"
    "both hosts.  If the peer cannot be reached nothing is started (no silent\n"
    "unprotected run): start again when it is up.  `hareplicate status VM`\n"
    "shows when the VM is protected.\n\n"
    "  --peer HOST[:PORT]  the backup host's replication port (default port 7788)\n"
    "  --kernel FILE       guest image (multiboot v1 / PVH ELF, Linux bzImage)\n"
    "  --attach DOMAIN     instead of --kernel, with a backend that drives VMs it\n"
    "                      did not start (xen): protect the running domain of\n"
    "                      that name or id (--memory and --vcpus must be its shape)\n"
    "  --initrd FILE       initial ramdisk of a Linux bzImage (loaded on this host\n"
    "                      only: the backup gets it as guest memory)\n"
    "  --backend NAME      kvm (default), xen (a build configured --with-xen), or\n"
    "                      mem (a software guest, no hypervisor: --kernel mem:,\n"
    "                      --append \"steps_per_s=N writes=N\"; for tests and drills)\n"
    "  --epoch DURATION    checkpoint interval: 25ms (default), 100ms, 1s, ...\n"
    "  --min-epoch DURATION\n"
    "                      output-triggered epochs: an epoch in which the guest\n"
    "                      sent a network frame ends early, once it is this old\n"
    "                      (and a short coalescing delay, at most 250us, after\n"
    "                      that frame), so the frame leaves sooner; epochs never\n"
    "                      start more often than this.  Console output never ends\n"
    "                      an epoch early.  0 (default): every epoch lasts --epoch.\n"
    "                      E.g. 2ms: a request/response pays a few ms instead of\n"
    "                      about half an epoch, for more checkpoints (pauses and\n"
    "                      bytes) while the guest talks.  100us..--epoch\n"
    "  --memory SIZE       guest RAM: 256M (default), 2G, ...\n"
    "  --vcpus N           vCPUs, 1..64 (default 1)\n"
    "  --append CMDLINE    guest command line\n"
    "  --console SPEC      where released console output goes: file:PATH or\n"
    "                      tcp:HOST:PORT (frames: u64 offset LE, u32 length LE,\n"
    "                      bytes).  Default: file:STATE-DIR/VM.console on the\n"
    "                      primary's host.  A file is appended to (never\n"
    "                      truncated) and never written through a symbolic\n"
    "                      link: start fails naming the path instead\n"
    "  --disk PATH[,readonly][,serial=S]\n"
    "                      a disk (KVM: virtio-blk) on the raw image PATH, a\n"
    "                      regular file or a block device; repeatable, up to 4.\n"
    "                      Its writes are replicated with the epoch (see\n"
    "                      hareplicate(8), DISKS)\n"
    "  --net tap=IFNAME[,mac=MAC]\n"
    "                      a virtio-net device on the existing TAP IFNAME (see\n"
    "                      `hareplicate run --help`); the frames the guest sends\n"
    "                      leave only once the backup holds the epoch.  The\n"
    "                      backup's copy uses the TAP of the same name on its\n"
    "                      host, or the one its hareplicated --replica-tap names\n"
    "  --config FILE       read the options above from FILE, one `key = value` a\n"
    "                      line (keys: name, peer, kernel, attach, backend, epoch,\n"
    "                      min_epoch, memory, vcpus, append, console, net, disk\n"
    "                      (repeatable); '#'\n"
    "                      starts a comment); options\n"
    "                      on the command line win\n"
    "  --control PATH      hareplicated's control socket (default\n"
    "                      $HAREPLICATE_CONTROL or /run/hareplicate/control.sock)\n\n"
    "The command returns once the VM was built and the backup accepted it, or\n"
    "with the reason it did not come up (nothing keeps running then).\n\n"
    "Exit status: 0 started, 1 refused or did not come up (the reason is\n"
    "printed), 2 bad usage, 69 hareplicated not reachable, busy or not answering.\n";

enum {
	K_NAME,
	K_PEER,
	K_KERNEL,
	K_BACKEND,
	K_EPOCH,
	K_MIN_EPOCH,
	K_MEMORY,
	K_VCPUS,
	K_APPEND,
	K_CONSOLE,
	K_NET,
	K_INITRD,
	K_ATTACH,
	K_NR
};
/* --disk is repeatable: kept apart from the one-value keys */
struct disks {
	char *arg[HR_MAX_DISKS];
	unsigned nr, from_cli;
};

static int disk_add(struct disks *d, const char *v)
{
	if (d->nr == HR_MAX_DISKS)
		return -E2BIG;
	return (d->arg[d->nr++] = strdup(v)) ? 0 : -ENOMEM;
}

struct settings {
	char **val;
	struct disks *disks;
};

static const char *const keys[K_NR] = {"name",	    "peer",   "kernel", "backend", "epoch",
				       "min_epoch", "memory", "vcpus",	"append",  "console",
				       "net",	    "initrd", "attach"};

/* common/conf.h's callback: a key of the file, unless the command line
 * gave it already (the command line wins). */
static int config_setting(void *arg, const char *key, const char *v, char *why, size_t n)
{
	struct settings *st = arg;
	char **val = st->val;
	int i;

	if (!strcmp(key, "disk")) {
		if (st->disks->from_cli) /* the command line's disks replace the file's */
			return 0;
		if (disk_add(st->disks, v) == -E2BIG) {
			snprintf(why, n, "more than %d disks", HR_MAX_DISKS);
			return -EINVAL;
		}
		return 0;
	}
	for (i = 0; i < K_NR && strcmp(keys[i], key); i++)
		;
	if (i == K_NR) {
		snprintf(why, n, "unknown key '%s'", key);
		return -EINVAL;
	}
	if (!val[i] && !(val[i] = strdup(v))) {
		snprintf(why, n, "out of memory");
		return -ENOMEM;
	}
	return 0;
}

static int load_config(const char *path, char *val[K_NR], struct disks *disks)
{
	char err[1024];
	struct settings st = {val, disks};

	if (hr_conf_read(path, config_setting, &st, err, sizeof(err)) < 0) {
		fprintf(stderr, "hareplicate start: %s\n", err);
		return -1;
	}
	return 0;
}

static int cmd_start(int argc, char **argv)
{
	static const struct option longopts[] = {
	    {"peer", required_argument, NULL, K_PEER},
	    {"kernel", required_argument, NULL, K_KERNEL},
	    {"backend", required_argument, NULL, K_BACKEND},
	    {"epoch", required_argument, NULL, K_EPOCH},
	    {"min-epoch", required_argument, NULL, K_MIN_EPOCH},
	    {"memory", required_argument, NULL, K_MEMORY},
	    {"vcpus", required_argument, NULL, K_VCPUS},
	    {"append", required_argument, NULL, K_APPEND},
	    {"console", required_argument, NULL, K_CONSOLE},
	    {"net", required_argument, NULL, K_NET},
	    {"initrd", required_argument, NULL, K_INITRD},
	    {"attach", required_argument, NULL, K_ATTACH},
	    {"disk", required_argument, NULL, 'd'},
	    {"config", required_argument, NULL, 'f'},
	    {"control", required_argument, NULL, 'C'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	const struct hr_cmd *self = &hr_cmd_start;
	char *val[K_NR] = {0};
	const char *control = NULL, *config = NULL;
	char kernel_abs[PATH_MAX], initrd_abs[PATH_MAX], console_abs[PATH_MAX + 8], cwd[PATH_MAX];
	uint64_t mem_bytes = 256ull << 20, epoch_us = 25000, min_epoch_us = 0;
	struct hr_sbuf req = {0};
	uint64_t vcpus = 1;
	struct disks disks = {0};
	int c, rc = 2;

	optind = 1;
	while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		if (c >= 0 && c < K_NR) {
			free(val[c]);
			val[c] = strdup(optarg);
			continue;
		}
		switch (c) {
		case 'd':
			disks.from_cli = 1;
			if (disk_add(&disks, optarg) == -E2BIG) {
				fprintf(stderr, "hareplicate start: more than %d --disk\n",
					HR_MAX_DISKS);
				goto out;
			}
			break;
		case 'f':
			config = optarg;
			break;
		case 'C':
			control = optarg;
			break;
		case 'h':
			return hr_cmd_help(self);
		default:
			return hr_cmd_usage(self);
		}
	}
	if (optind < argc)
		val[K_NAME] = strdup(argv[optind++]);
	if (optind != argc) {
		fprintf(stderr, "hareplicate start: unexpected argument '%s'\n", argv[optind]);
		return hr_cmd_usage(self);
	}
	if (config && load_config(config, val, &disks) < 0)
		goto out;
	if (!val[K_NAME] || !val[K_PEER] || !val[K_KERNEL] == !val[K_ATTACH]) {
		fprintf(stderr, "hareplicate start: VM, --peer and one of --kernel or --attach "
				"are required\n");
		hr_cmd_usage(self);
		goto out;
	}
	const char *backend = val[K_BACKEND] ? val[K_BACKEND] : "kvm";
	if (!hr_backend_find(backend)) {
		const char *why = hr_backend_why_missing(backend);
		if (why)
			fprintf(stderr, "hareplicate start: --backend %s: %s\n", backend, why);
		else
			fprintf(
			    stderr,
			    "hareplicate start: --backend %s: unknown backend (kvm, xen, mem)\n",
			    backend);
		goto out;
	}
	if (val[K_EPOCH] &&
	    (hr_parse_duration_us(val[K_EPOCH], &epoch_us) < 0 || epoch_us < 1000)) {
		fprintf(
		    stderr,
		    "hareplicate start: bad --epoch '%s' (e.g. 25ms, 100ms, 1s; at least 1ms)\n",
		    val[K_EPOCH]);
		goto out;
	}
	if (val[K_MIN_EPOCH] &&
	    (hr_parse_duration_us(val[K_MIN_EPOCH], &min_epoch_us) < 0 ||
	     (min_epoch_us && (min_epoch_us < 100 || min_epoch_us > epoch_us)))) {
		fprintf(stderr,
			"hareplicate start: bad --min-epoch '%s' (0 = off, or 100us..--epoch, "
			"e.g. 2ms)\n",
			val[K_MIN_EPOCH]);
		goto out;
	}
	if (val[K_MEMORY] && hr_parse_size(val[K_MEMORY], &mem_bytes) < 0) {
		fprintf(stderr, "hareplicate start: bad --memory '%s' (e.g. 256M, 2G)\n",
			val[K_MEMORY]);
		goto out;
	}
	if (val[K_VCPUS]) {
		if (hr_parse_count(val[K_VCPUS], 1, HR_MAX_VCPUS, &vcpus) < 0) {
			fprintf(stderr, "hareplicate start: bad --vcpus '%s' (1..%d)\n",
				val[K_VCPUS], HR_MAX_VCPUS);
			goto out;
		}
	}
	char why[160];
	if (val[K_NET] && hr_net_spec_check(val[K_NET], why, sizeof(why)) < 0) {
		fprintf(stderr, "hareplicate start: bad --net '%s': %s\n", val[K_NET], why);
		goto out;
	}
	char disk_req[HR_MAX_DISKS][PATH_MAX + 64];
	for (unsigned i = 0; i < disks.nr; i++) {
		struct hr_disk_arg d;
		char abs[PATH_MAX];
		if (hr_disk_arg_parse(disks.arg[i], &d, why, sizeof(why)) < 0) {
			fprintf(stderr, "hareplicate start: bad --disk '%s': %s\n", disks.arg[i],
				why);
			goto out;
		}
		if (!realpath(d.spec.path, abs)) {
			fprintf(stderr, "hareplicate start: --disk %s: %s\n", d.spec.path,
				strerror(errno));
			goto out;
		}
		d.spec.path = abs;
		if (hr_disk_arg_format(&d.spec, disk_req[i], sizeof(disk_req[i])) < 0) {
			fprintf(stderr, "hareplicate start: --disk %s: path too long\n", abs);
			goto out;
		}
	}
	/* the daemon runs in /: send absolute paths (a built-in guest's name as is) */
	const struct hr_backend_ops *ops = hr_backend_find(backend);
	if (val[K_KERNEL] && (ops->features & HR_BF_BUILTIN_GUEST) && val[K_KERNEL][0] != '/')
		snprintf(kernel_abs, sizeof(kernel_abs), "%s", val[K_KERNEL]);
	else if (val[K_KERNEL] && !realpath(val[K_KERNEL], kernel_abs)) {
		fprintf(stderr, "hareplicate start: --kernel %s: %s\n", val[K_KERNEL],
			strerror(errno));
		goto out;
	}
	if (val[K_INITRD] && !realpath(val[K_INITRD], initrd_abs)) {
		fprintf(stderr, "hareplicate start: --initrd %s: %s\n", val[K_INITRD],
			strerror(errno));
		goto out;
	}
	const char *console = val[K_CONSOLE];
	if (console && !strncmp(console, "file:", 5) && console[5] != '/' &&
	    getcwd(cwd, sizeof(cwd))) {
		snprintf(console_abs, sizeof(console_abs), "file:%s/%s", cwd, console + 5);
		console = console_abs;
	}

	hr_kv_add(&req, "vm", val[K_NAME]);
	hr_kv_add(&req, "backend", backend);
	hr_kv_add(&req, "peer", val[K_PEER]);
	if (val[K_KERNEL])
		hr_kv_add(&req, "kernel", kernel_abs);
	else
		hr_kv_add(&req, "attach", val[K_ATTACH]);
	if (val[K_INITRD])
		hr_kv_add(&req, "initrd", initrd_abs);
	hr_kv_addu(&req, "memory_bytes", mem_bytes);
	hr_kv_addu(&req, "vcpus", vcpus);
	hr_kv_addu(&req, "epoch_us", epoch_us);
	if (min_epoch_us)
		hr_kv_addu(&req, "min_epoch_us", min_epoch_us);
	if (val[K_APPEND])
		hr_kv_add(&req, "append", val[K_APPEND]);
	if (console)
		hr_kv_add(&req, "console", console);
	if (val[K_NET])
		hr_kv_add(&req, "net", val[K_NET]);
	for (unsigned i = 0; i < disks.nr; i++) {
		char k[16];
		snprintf(k, sizeof(k), "disk%u", i);
		hr_kv_add(&req, k, disk_req[i]);
	}
	rc = hr_ctl_request(hr_ctl_path(control), "start", &req, stdout);
out:
	hr_sbuf_free(&req);
	for (int i = 0; i < K_NR; i++)
		free(val[i]);
	for (unsigned i = 0; i < disks.nr; i++)
		free(disks.arg[i]);
	return rc;
}

const struct hr_cmd hr_cmd_start = {
    "start",
    "VM --peer HOST[:PORT] --kernel FILE|--attach DOMAIN [--initrd FILE] [--backend kvm] "
    "[--epoch 25ms] "
    "[--min-epoch 2ms] "
    "[--memory SIZE] "
    "[--vcpus N] [--append CMDLINE] [--console SPEC] [--net SPEC] [--disk SPEC]... [--config FILE]",
    start_help, cmd_start};
