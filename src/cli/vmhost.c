#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/vmhost.h"
#include "common/err.h"
#include "common/log.h"
#include "common/util.h"
#include "core/snapshot.h"

static int wake_pipe[2] = {-1, -1};

struct exit_note {
	int sig;
	int why;
	int code;
};

static void on_signal(int sig)
{
	struct exit_note n = {.sig = sig};
	int e = errno;
	if (write(wake_pipe[1], &n, sizeof(n)) < 0) {
	}
	errno = e;
}

static void on_guest_exit(void *opaque, enum hr_exit_reason why, int code)
{
	struct exit_note n = {.why = (int)why, .code = code};
	(void)opaque;
	if (write(wake_pipe[1], &n, sizeof(n)) < 0) {
	}
}

static struct hr_vm *run_vm; /* set once open returned (atomic) */
static const struct hr_backend_ops *run_ops;

/* Guest output of an unprotected local run: channel 0 (the console) to
 * stdout, network frames straight to their TAP (nothing is held). */
static int emit_local(void *opaque, unsigned chan, const void *buf, size_t len)
{
	struct hr_vm *vm = __atomic_load_n(&run_vm, __ATOMIC_ACQUIRE);
	(void)opaque;
	if (chan == 0)
		hr_write_all(STDOUT_FILENO, buf, len);
	else if (vm && run_ops->output_deliver)
		run_ops->output_deliver(vm, chan, buf, len);
	return 0;
}

static int take_snapshot(const struct hr_backend_ops *ops, struct hr_vm *vm,
			 const struct hr_vm_config *cfg, const char *path)
{
	const char *name = cfg->name;
	char tmp[4096];
	uint64_t t0 = hr_now_ns();
	int rc = ops->pause(vm);
	if (rc < 0)
		return rc;
	/* a private temp file beside the target (O_EXCL: never an existing
	 * file, never through a symbolic link someone planted), renamed over it */
	snprintf(tmp, sizeof(tmp), "%s.tmp.XXXXXX", path);
	int fd = mkostemp(tmp, O_CLOEXEC);
	if (fd < 0) {
		rc = -errno;
	} else {
		rc = hr_snapshot_write(ops, vm, cfg, fd);
		if (!rc && fsync(fd) < 0)
			rc = -errno;
		if (close(fd) < 0 && !rc)
			rc = -errno;
		if (!rc && rename(tmp, path) < 0)
			rc = -errno;
		if (rc)
			unlink(tmp);
	}
	uint64_t t1 = hr_now_ns();
	if (rc)
		log_err(name, "snapshot to %s failed: %s", path, hr_strerror(rc));
	else
		log_info(name, "snapshot written to %s (guest paused %.1f ms)", path,
			 (t1 - t0) / 1e6);
	return rc;
}

int hr_vmhost_main(struct hr_vm_config *cfg, const char *restore_path,
		   const struct hr_vmhost_opts *opts)
{
	const struct hr_backend_ops *ops = hr_backend_find("kvm");
	const char *name_arg = cfg->name;
	struct hr_snapshot_info info; /* restore: cfg->name may point into it */
	struct hr_vm *vm = NULL;
	int status = 70, rc, snap_fd = -1;

	if (pipe2(wake_pipe, O_CLOEXEC) < 0)
		return 71;
	cfg->emit = emit_local;
	run_ops = ops;
	cfg->on_exit = on_guest_exit;

	if (restore_path) {
		snap_fd = open(restore_path, O_RDONLY | O_CLOEXEC);
		if (snap_fd < 0) {
			log_err(cfg->name, "cannot open snapshot %s: %s", restore_path,
				strerror(errno));
			return 66;
		}
		if ((rc = hr_snapshot_read_info(snap_fd, &info)) < 0) {
			log_err(cfg->name, "%s: %s", restore_path, hr_strerror(rc));
			close(snap_fd);
			return 65;
		}
		if (strcmp(info.backend, ops->name)) {
			log_err(cfg->name, "%s was taken with backend '%s', not '%s'", restore_path,
				info.backend, ops->name);
			close(snap_fd);
			return 65;
		}
		cfg->mem_bytes = info.mem_bytes;
		cfg->nr_vcpus = info.nr_vcpus;
		cfg->kernel_path = NULL;
		/* the name in the file; info outlives every use, cfg->name is put back at out */
		if (!cfg->name || !strcmp(cfg->name, "vm"))
			cfg->name = info.vm_name;
	}

	rc = ops->open(&vm, cfg);
	if (rc < 0) {
		log_err(cfg->name, "cannot start the VM: %s%s%s", hr_strerror(rc),
			ops->last_error && vm ? ": " : "",
			ops->last_error && vm ? ops->last_error(vm) : "");
		goto out;
	}
	__atomic_store_n(&run_vm, vm, __ATOMIC_RELEASE);
	if (restore_path) {
		rc = lseek(snap_fd, 0, SEEK_SET) < 0 ? -errno : hr_snapshot_read(ops, vm, snap_fd);
		if (rc < 0) {
			log_err(cfg->name, "cannot restore from %s: %s%s%s", restore_path,
				hr_strerror(rc),
				ops->last_error && ops->last_error(vm)[0] ? ": " : "",
				ops->last_error ? ops->last_error(vm) : "");
			status = 65;
			goto out;
		}
		log_info(cfg->name, "restored from %s", restore_path);
	}

	struct sigaction sa = {.sa_handler = on_signal, .sa_flags = SA_RESTART};
	sigemptyset(&sa.sa_mask);
	sigaction(SIGUSR1, &sa, NULL);
	sigaction(SIGUSR2, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);

	if ((rc = ops->resume(vm)) < 0)
		goto out;

	uint64_t deadline =
	    opts->timeout_s > 0 ? hr_now_ns() + (uint64_t)(opts->timeout_s * 1e9) : 0;
	int stdin_open = ops->console_in != NULL;
	for (;;) {
		struct pollfd pfd[2] = {{wake_pipe[0], POLLIN, 0}, {STDIN_FILENO, POLLIN, 0}};
		int timeout_ms = -1;
		if (deadline) {
			uint64_t now = hr_now_ns();
			if (now >= deadline) {
				log_info(cfg->name, "timeout after %.1f s, stopping",
					 opts->timeout_s);
				status = 124;
				break;
			}
			timeout_ms = (int)((deadline - now) / 1000000) + 1;
		}
		if (poll(pfd, stdin_open ? 2 : 1, timeout_ms) < 0 && errno != EINTR)
			break;
		if (stdin_open && (pfd[1].revents & (POLLIN | POLLHUP))) {
			char buf[256];
			ssize_t n = read(STDIN_FILENO, buf, sizeof(buf));
			if (n > 0)
				ops->console_in(vm, buf, (size_t)n);
			else
				stdin_open = 0;
		}
		if (!(pfd[0].revents & POLLIN))
			continue;
		struct exit_note n;
		if (read(wake_pipe[0], &n, sizeof(n)) != sizeof(n))
			continue;
		if (n.sig == SIGUSR1 || n.sig == SIGUSR2) {
			if (!opts->snapshot_path) {
				log_warnx(cfg->name, "signal %d: no --snapshot FILE given, ignored",
					  n.sig);
				continue;
			}
			rc = take_snapshot(ops, vm, cfg, opts->snapshot_path);
			if (n.sig == SIGUSR2 && !rc) {
				status = 0;
				break;
			}
			ops->resume(vm);
			continue;
		}
		if (n.sig) {
			log_info(cfg->name, "stopping on signal %d", n.sig);
			status = 128 + n.sig;
			break;
		}
		switch (n.why) {
		case HR_EXIT_DEBUG_PORT:
			status = n.code;
			break;
		case HR_EXIT_SHUTDOWN:
		case HR_EXIT_HALT:
			status = 0;
			break;
		default:
			log_err(cfg->name, "guest stopped on an error: %s",
				ops->last_error ? ops->last_error(vm) : "unknown");
			status = 70;
		}
		break;
	}
out:
	/* vm's vCPUs (the only emitters) end before it is freed */
	ops->close(vm);
	__atomic_store_n(&run_vm, NULL, __ATOMIC_RELEASE);
	if (snap_fd >= 0)
		close(snap_fd);
	cfg->name = name_arg;
	return status;
}
