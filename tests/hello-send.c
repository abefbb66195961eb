/*
 * hello-send.c - a primary that asks for anything: connect to a
 * hareplicated's replication port, send the daemon preamble for VM and a
 * HELLO with the given memory and vCPUs, print the backup's answer
 * ("accepted" or "refused: TEXT").  For tests/t-hardened.sh; every wait is
 * bounded (15 s).  Exit 0 when an answer came, 1 otherwise.
 *
 *   hello-send PORT VM MEM_BYTES NR_VCPUS [NODE CERT KEY CA]
 *
 * With the last four: TLS in CA mode first (src/net/tls.h), as a host with
 * that certificate, and the preamble says node=NODE (which need not be the
 * certificate's name: tests/t-auth.sh lies with it).  A refused handshake
 * prints "tls refused: TEXT".
 *
 * HR_HELLO_CPU=host|lacking|vendor in the environment: the HELLO carries a
 * CPU model (cpu-model.h), this host's KVM one, the same with a feature bit
 * this host lacks (printed first as "cpu: CPUID 0xF.I REG bits 0xB"), or
 * with another vendor.  For tests/t-kvm-cpuid.sh.
 */
#include <netinet/in.h>
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "cpu-model.h"
#include "common/err.h"
#include "common/util.h"
#include "backends/backend.h"
#include "core/stream.h"
#include "net/tls.h"

int main(int argc, char **argv)
{
	struct sockaddr_in sin = {.sin_family = AF_INET};
	struct timeval tv = {15, 0};
	uint64_t port, mem, vcpus;
	char line[600], c;
	size_t n = 0;
	int fd, rc;

	if ((argc != 5 && argc != 9) || hr_parse_count(argv[1], 1, 65535, &port) < 0 ||
	    hr_parse_count(argv[3], 0, UINT64_MAX, &mem) < 0 ||
	    hr_parse_count(argv[4], 0, UINT32_MAX, &vcpus) < 0) {
		fprintf(stderr,
			"usage: hello-send PORT VM MEM_BYTES NR_VCPUS [NODE CERT KEY CA]\n");
		return 2;
	}
	sin.sin_port = htons((uint16_t)port);
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	fd = socket(AF_INET, SOCK_STREAM, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sin, sizeof(sin)) < 0) {
		perror("hello-send: connect");
		return 1;
	}
	if (argc == 9) {
		struct hr_tls_config cfg = {
		    .cert_file = argv[6], .key_file = argv[7], .ca_file = argv[8]};
		struct hr_tls_ctx *ctx;
		char err[512] = "";
		rc = hr_tls_ctx_new(&ctx, &cfg, err, sizeof(err));
		if (rc < 0) {
			fprintf(stderr, "hello-send: TLS: %s\n", err);
			return 1;
		}
		rc = hr_tls_client(ctx, fd, &(struct hr_tls_peer){.deadline_ms = 10000}, &fd, NULL,
				   0);
		if (rc < 0) {
			printf("tls refused: %s\n", hr_strerror(rc));
			return 0;
		}
		snprintf(line, sizeof(line), "hrd=1 vm=%s node=%s\n", argv[2], argv[5]);
	} else {
		snprintf(line, sizeof(line), "hrd=1 vm=%s\n", argv[2]);
	}
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	if (hr_write_all(fd, line, strlen(line)) < 0)
		return 1;
	while (n < sizeof(line) - 1 && read(fd, &c, 1) == 1 && c != '\n')
		line[n++] = c;
	line[n] = '\0';
	if (!strstr(line, "status=ok")) {
		printf("preamble refused: %s\n", line);
		return 0;
	}
	struct hr_mem_region layout = {0, mem, NULL};
	const char *cpu = getenv("HR_HELLO_CPU");
	void *model = NULL;
	size_t model_bytes = 0;
	if (cpu && *cpu) {
		char what[80];
		if (!hr_backend_find("kvm") ||
		    cpu_model_host(hr_backend_find("kvm"), &model, &model_bytes) < 0) {
			printf("no CPU model: no usable KVM here\n");
			return 1;
		}
		if (!strcmp(cpu, "lacking") &&
		    cpu_model_add_feature(model, model_bytes, what, sizeof(what)) == 0)
			printf("cpu: %s\n", what);
		else if (!strcmp(cpu, "vendor") && cpu_model_other_vendor(model, model_bytes) == 0)
			printf("cpu: vendor HRtestCPUxyz\n");
		else if (strcmp(cpu, "host"))
			return 2;
		fflush(stdout);
	}
	rc = hr_stream_send_hello_full(fd, HR__ROLE__ROLE_PRIMARY, argv[2], "kvm", mem,
				       (unsigned)vcpus, &layout, 1, 25000, 0, 0, NULL, model,
				       model_bytes);
	free(model);
	struct hr_frame f;
	if (!rc)
		rc = hr_stream_recv(fd, argv[2], &f);
	if (rc < 0) {
		printf("no answer: %s\n", hr_strerror(rc));
		return 1;
	}
	if (f.type != HR_FT_HELLO_ACK) {
		printf("no answer: frame type %u\n", f.type);
		return 1;
	}
	Hr__HelloAck *a = (Hr__HelloAck *)f.msg;
	if (a->accepted)
		printf("accepted\n");
	else
		printf("refused: %s\n", a->error_text ? a->error_text : "");
	hr_frame_release(&f);
	close(fd);
	return 0;
}
