/*
 * session.c - the bytes a backup reads after HELLO_ACK, made by the real
 * primary side (fuzz.h: fz_session): a hand-stepped mem guest, its live
 * round sent by the sender, then epochs taken by the epoch transaction and
 * sent by the sender, as tests/t-core.c does.  Seeds for the frame and
 * staging targets.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "backends/mem/mem.h"
#include "core/epoch.h"
#include "core/planner.h"
#include "core/sender.h"
#include "fuzz.h"

static struct hr_outbuf *g_ob;

static int emit(void *o, unsigned chan, const void *buf, size_t len)
{
	return hr_outbuf_append(g_ob, chan, buf, len);
}

int fz_session(uint64_t mem_bytes, unsigned nr_epochs, unsigned writes, uint8_t **buf_r,
	       size_t *len_r)
{
	static const struct hr_chan_desc console[] = {{.name = "console", .kind = HR_CHAN_CONSOLE}};
	const struct hr_backend_ops *ops = &hr_mem_ops;
	struct hr_vm_config pc = {.name = "fz",
				  .mem_bytes = mem_bytes,
				  .nr_vcpus = 1,
				  .kernel_path = "none",
				  .emit = emit};
	struct hr_epoch_src src = {.vm = "fz", .ops = ops};
	struct hr_guestmem gm;
	struct hr_sender snd;
	struct hr_vm *vm = NULL;
	int sv[2] = {-1, -1}, rc;

	if ((rc = fz_socketpair(sv, 8 << 20)) < 0)
		return rc;
	hr_sender_init(&snd, "fz", sv[0]);
	if ((rc = ops->open(&vm, &pc)) < 0 || (rc = hr_guestmem_init(&gm, ops, vm)) < 0 ||
	    (rc = hr_outbuf_new(&g_ob, "fz", console, 1, 1 << 20, 0)) < 0 ||
	    (rc = hr_dirtyset_new(&src.dirty, gm.nr_gfns)) < 0)
		goto out;
	src.hvm = vm;
	src.gm = &gm;
	src.outbuf = g_ob;
	if (!(src.gfns = malloc(gm.nr_gfns * sizeof(uint64_t)))) {
		rc = -ENOMEM;
		goto out;
	}
	ops->dirty_start(vm);
	ops->resume(vm);
	hr_mem_guest_step(vm, writes);
	int64_t touched = hr_planner_touched(&gm, src.gfns);
	if ((rc = touched < 0 ? (int)touched : 0) < 0 ||
	    (rc = hr_sender_send_live(&snd, &gm, src.gfns, (uint64_t)touched)) < 0)
		goto out;
	for (unsigned e = 0; e < nr_epochs; e++) {
		struct hr_epoch ep;
		hr_mem_guest_step(vm, writes);
		if ((rc = hr_epoch_take(&src, e, &ep)) < 0)
			goto out;
		rc = hr_sender_send_epoch(&snd, &ep);
		hr_epoch_release(&ep);
		if (rc < 0 || (rc = hr_sender_ack(&snd, e, NULL)) < 0)
			goto out;
	}
	rc = fz_drain(sv[1], buf_r, len_r);
out:
	hr_sender_fini(&snd);
	hr_capture_fini(&src.capture);
	if (src.dirty)
		hr_dirtyset_free(src.dirty);
	free(src.gfns);
	if (g_ob)
		hr_outbuf_free(g_ob);
	g_ob = NULL;
	if (vm)
		ops->close(vm);
	close(sv[0]);
	close(sv[1]);
	return rc;
}
