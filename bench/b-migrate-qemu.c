/* b-migrate-qemu.c - QEMU's side of bench/b-migrate (see b-migrate.c). */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/err.h"
#include "common/util.h"
#include "b-migrate.h"
#include "qmp.h"

/* ---------- QEMU over QMP ---------- */

static pid_t qemu_spawn(const char *ns, const char *dir, const char *tag, const char *append,
			const char *incoming)
{
	char serial[160], qmp[160], errlog[160];
	snprintf(serial, sizeof(serial), "file:%s/%s.serial", dir, tag);
	snprintf(qmp, sizeof(qmp), "unix:%s/%s.qmp,server=on,wait=off", dir, tag);
	snprintf(errlog, sizeof(errlog), "%s/%s.stderr", dir, tag);
	const char *argv[40];
	int n = 0;
	if (ns) {
		argv[n++] = "ip";
		argv[n++] = "netns";
		argv[n++] = "exec";
		argv[n++] = ns;
	}
	const char *rest[] = {qemu_bin,	  "-accel",
			      "kvm",	  "-m",
			      "1G",	  "-smp",
			      "1",	  "-nodefaults",
			      "-kernel",  kernel,
			      "-append",  append,
			      "-serial",  serial,
			      "-display", "none",
			      "-monitor", "none",
			      "-qmp",	  qmp,
			      "-device",  "isa-debug-exit,iobase=0xf4,iosize=0x04"};
	for (size_t i = 0; i < sizeof(rest) / sizeof(rest[0]); i++)
		argv[n++] = rest[i];
	if (incoming) {
		argv[n++] = "-incoming";
		argv[n++] = incoming;
	}
	argv[n] = NULL;
	pid_t pid = fork();
	if (pid == 0) {
		int devnull = open("/dev/null", O_RDWR);
		int errfd = open(errlog, O_WRONLY | O_CREAT | O_TRUNC, 0600);
		if (devnull >= 0) {
			dup2(devnull, 0);
			dup2(devnull, 1);
		}
		if (errfd >= 0)
			dup2(errfd, 2);
		execvp(argv[0], (char **)argv);
		_exit(127);
	}
	return pid;
}

static void qemu_reap(pid_t pid, struct qmp *q)
{
	int st;
	if (pid <= 0)
		return;
	if (q && q->fd >= 0)
		qmp_cmd(q, "b-migrate", "{\"execute\":\"quit\"}\n", NULL, 0);
	uint64_t t0 = hr_now_ns();
	while (waitpid(pid, &st, WNOHANG) != pid) {
		if (hr_now_ns() - t0 > 5e9) {
			kill(pid, SIGKILL);
			waitpid(pid, &st, 0);
			break;
		}
		usleep(10000);
	}
}

static double json_num(const char *s, const char *key)
{
	const char *p = strstr(s, key);
	if (!p)
		return -1;
	p += strlen(key);
	while (*p == ' ' || *p == ':' || *p == '"')
		p++;
	return strtod(p, NULL);
}

static void show_stderr(const char *dir, const char *tag)
{
	char path[160], buf[2048];
	snprintf(path, sizeof(path), "%s/%s.stderr", dir, tag);
	int fd = open(path, O_RDONLY);
	ssize_t n = fd >= 0 ? read(fd, buf, sizeof(buf) - 1) : -1;
	if (n > 0) {
		buf[n] = 0;
		fprintf(stderr, "b-migrate: QEMU %s stderr:\n%s", tag, buf);
	}
	if (fd >= 0)
		close(fd);
}

/* max_bw: 0 = QEMU's default, else migrate_set_parameter max-bandwidth (bytes/s) */
void qemu_run(const char *cmdline, int capped, uint64_t max_bw, struct result *res)
{
	char dir[] = "/tmp/b-migrate.XXXXXX", path[160], incoming[64], cmd[256], reply[8192];
	struct qmp qs = {.fd = -1}, qd = {.fd = -1};
	pid_t ps = -1, pd = -1;
	int in_ns = capped && netns_up;
	const char *ip = in_ns ? NS_IP_B : "127.0.0.1";

	memset(res, 0, sizeof(*res));
	res->done = -1;
	if (!mkdtemp(dir)) {
		snprintf(res->why, sizeof(res->why), "mkdtemp: %s", strerror(errno));
		return;
	}
	int port = free_port(in_ns ? nsfd_b : -1, ip);
	snprintf(incoming, sizeof(incoming), "tcp:%s:%d", ip, port);
	ps = qemu_spawn(in_ns ? ns_a : NULL, dir, "src", cmdline, NULL);
	pd = qemu_spawn(in_ns ? ns_b : NULL, dir, "dst", cmdline, incoming);
	snprintf(path, sizeof(path), "%s/src.qmp", dir);
	if (qmp_open(&qs, path, 30) < 0) {
		snprintf(res->why, sizeof(res->why), "no QMP from the source QEMU");
		goto out;
	}
	snprintf(path, sizeof(path), "%s/dst.qmp", dir);
	if (qmp_open(&qd, path, 30) < 0) {
		snprintf(res->why, sizeof(res->why), "no QMP from the destination QEMU");
		goto out;
	}
	snprintf(path, sizeof(path), "%s/src.serial", dir);
	uint64_t t0 = hr_now_ns();
	while (!file_has(path, "memwalk: seq=1 ") && hr_now_ns() - t0 < 120e9)
		usleep(20000);
	if (!file_has(path, "memwalk: seq=1 ")) {
		snprintf(res->why, sizeof(res->why), "the QEMU guest did not start walking");
		goto out;
	}
	usleep((useconds_t)(warm_s * 1e6));
	if (max_bw) {
		snprintf(cmd, sizeof(cmd),
			 "{\"execute\":\"migrate-set-parameters\",\"arguments\":"
			 "{\"max-bandwidth\":%llu}}\n",
			 (unsigned long long)max_bw);
		if (qmp_cmd(&qs, "b-migrate", cmd, NULL, 0)) {
			snprintf(res->why, sizeof(res->why), "migrate-set-parameters failed");
			goto out;
		}
	}
	snprintf(cmd, sizeof(cmd), "{\"execute\":\"migrate\",\"arguments\":{\"uri\":\"%s\"}}\n",
		 incoming);
	if (qmp_cmd(&qs, "b-migrate", cmd, NULL, 0)) {
		snprintf(res->why, sizeof(res->why), "migrate failed");
		goto out;
	}
	t0 = hr_now_ns();
	for (;;) {
		usleep(100000);
		if (qmp_cmd(&qs, "b-migrate", "{\"execute\":\"query-migrate\"}\n", reply,
			    sizeof(reply))) {
			snprintf(res->why, sizeof(res->why), "query-migrate failed");
			goto out;
		}
		double tr = json_num(reply, "\"transferred\"");
		if (tr >= 0)
			res->bytes = tr;
		res->syncs = json_num(reply, "\"dirty-sync-count\"");
		res->normal = json_num(reply, "\"normal\"");
		res->duplicate = json_num(reply, "\"duplicate\"");
		double dr = json_num(reply, "\"dirty-pages-rate\"");
		if (dr > 0)
			res->dirty_rate = dr;
		if (strstr(reply, "\"completed\"")) {
			res->done = 1;
			res->total_ms = json_num(reply, "\"total-time\"");
			res->down_ms = json_num(reply, "\"downtime\"");
			break;
		}
		if (strstr(reply, "\"failed\"") || strstr(reply, "\"cancelled\"")) {
			snprintf(res->why, sizeof(res->why), "QEMU: %.100s", reply);
			goto out;
		}
		if (hr_now_ns() - t0 > bound_s * 1e9) {
			double exp = json_num(reply, "\"expected-downtime\"");
			res->done = 0;
			res->total_ms = (hr_now_ns() - t0) / 1e6;
			qmp_cmd(&qs, "b-migrate", "{\"execute\":\"migrate_cancel\"}\n", NULL, 0);
			snprintf(
			    res->why, sizeof(res->why),
			    "did not finish in %.0f s (cancelled); expected-downtime then %.0f ms",
			    bound_s, exp);
			goto out;
		}
	}
	/* the destination runs the guest */
	usleep(300000);
	if (qmp_cmd(&qd, "b-migrate", "{\"execute\":\"query-status\"}\n", reply, sizeof(reply)) ||
	    !strstr(reply, "\"running\"")) {
		res->done = -1;
		snprintf(res->why, sizeof(res->why), "the destination QEMU does not run: %.100s",
			 reply);
	}
out:
	if (res->done < 0) {
		show_stderr(dir, "src");
		show_stderr(dir, "dst");
	}
	qemu_reap(ps, &qs);
	qemu_reap(pd, &qd);
	if (qs.fd >= 0)
		close(qs.fd);
	if (qd.fd >= 0)
		close(qd.fd);
	static const char *const files[] = {"src.serial", "dst.serial", "src.qmp",
					    "dst.qmp",	  "src.stderr", "dst.stderr"};
	for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
		snprintf(path, sizeof(path), "%s/%s", dir, files[i]);
		unlink(path);
	}
	rmdir(dir);
}
