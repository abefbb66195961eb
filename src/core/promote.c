/* promote.c - the replica takes over (promote.h). */
#include <errno.h>
#include <string.h>

#include "common/err.h"
#include "common/log.h"
#include "common/util.h"
#include "core/envelope.h"
#include "core/promote.h"

int hr_promote(const char *vm, const struct hr_backend_ops *ops, struct hr_vm *hvm,
	       const void *state, size_t len, hr_output_sink_fn sink, void *sink_opaque,
	       uint64_t *next_offsets_r, uint64_t *loaded_ns_r)
{
	struct hr_envelope env;
	struct hr_envelope_pos pos = {0};
	struct hr_out_record rec;
	const uint8_t *data;
	int rc;

	if ((rc = hr_envelope_parse(&env, state, state ? len : 0)) < 0) {
		log_err(vm, "committed state is not a valid engine envelope");
		return rc;
	}
	if ((rc = ops->load_state(hvm, env.blob, env.blob_bytes)) < 0) {
		log_err(vm, "promotion: loading the committed state failed: %s%s%s",
			hr_strerror(rc), ops->last_error ? ": " : "",
			ops->last_error ? ops->last_error(hvm) : "");
		return rc;
	}
	if (loaded_ns_r)
		*loaded_ns_r = hr_now_ns();
	/* Output the primary may not have released: the sink drops repeats. */
	while (sink && hr_envelope_next(&env, &pos, &rec, &data))
		sink(sink_opaque, rec.chan, rec.offset, data, rec.len);
	memset(next_offsets_r, 0, HR_MAX_CHANNELS * sizeof(*next_offsets_r));
	memcpy(next_offsets_r, env.next_offsets, env.nr_chans * sizeof(*next_offsets_r));
	return ops->resume(hvm);
}
