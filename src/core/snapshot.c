/*
 * snapshot.c - whole-VM snapshot files.  Format: docs/snapshot-format.md.
 *
 * Backend-agnostic: memory is reached through the backend's mem_layout
 * mappings, vCPU + device state through save_state / load_state.
 */
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <unistd.h>
#include <sys/mman.h>
#include <sys/sysinfo.h>
#include <sys/uio.h>

#include <xxhash.h>

#include "backends/backend.h"
#include "common/err.h"
#include "common/log.h"
#include "common/util.h"
#include "common/unaligned.h"
#include "core/snapshot.h"

#define SNAP_MAGIC	    "HRSNAP01"
#define SNAP_HDR_FIXED	    112u /* bytes before the region table */
#define SNAP_REGION_BYTES   16u
#define SNAP_REC_HDR_BYTES  32u
#define SNAP_REC_SUM_OFFSET 24u /* the record checksum covers bytes 0..23 + payload */
#define SNAP_HDR_MAX	    (SNAP_HDR_FIXED + HR_SNAP_MAX_REGIONS * SNAP_REGION_BYTES + 8u)

#define SNAP_REC_PAGES 1u
#define SNAP_REC_STATE 2u
#define SNAP_REC_END   3u

#define SNAP_MAX_RUN_PAGES   256u	   /* writer: 1 MiB per page record */
#define SNAP_MAX_STATE_BYTES (64ull << 20) /* both sides */
#define SNAP_SCAN_PAGES	     65536u	   /* residency scan chunk: 256 MiB of guest */
#define SNAP_READ_CHUNK	     (1u << 20)	   /* reader: bytes per read() into guest memory */
#define SNAP_WR_MAX_RECS     64u	   /* writer: records per writev batch */

static const uint8_t zero_page[HR_PAGE_SIZE];

/* ---- writer ------------------------------------------------------------ */

struct snap_writer {
	int fd;
	const char *vm;
	uint64_t off_bytes; /* bytes handed to write so far */
	uint64_t nr_records;
	uint64_t nr_pages;
	XXH3_state_t *rec_sum;
	XXH3_state_t *all_sums;
	struct iovec iov[2 * SNAP_WR_MAX_RECS];
	unsigned nr_iov;
	uint8_t hdrs[SNAP_WR_MAX_RECS][SNAP_REC_HDR_BYTES];
	unsigned nr_hdrs;
	/* residency scan */
	unsigned char *vec;
	uint64_t *pagemap;
	int pagemap_fd;
	int trust_mincore; /* 0: read every page; 1: non-resident may hold data only if swapped */
	int check_swap;
};

static int writer_flush(struct snap_writer *w)
{
	uint64_t bytes = 0;
	int rc;

	for (unsigned i = 0; i < w->nr_iov; i++)
		bytes += w->iov[i].iov_len;
	rc = hr_writev_all(w->fd, w->iov, (int)w->nr_iov);
	if (rc < 0) {
		log_warnx(w->vm, "snapshot: write at offset %" PRIu64 ": %s", w->off_bytes,
			  hr_strerror(rc));
		return rc;
	}
	w->off_bytes += bytes;
	w->nr_iov = 0;
	w->nr_hdrs = 0;
	return 0;
}

/* Queue one record; payload must stay valid until the next flush. */
static int writer_record(struct snap_writer *w, uint32_t type, uint64_t a, uint64_t b,
			 const void *payload, uint64_t payload_bytes)
{
	uint8_t *h = w->hdrs[w->nr_hdrs++];
	uint8_t sum_le[8];
	uint64_t sum;

	hr_put_le32(h, type);
	hr_put_le32(h + 4, 0);
	hr_put_le64(h + 8, a);
	hr_put_le64(h + 16, b);
	XXH3_64bits_reset(w->rec_sum);
	XXH3_64bits_update(w->rec_sum, h, SNAP_REC_SUM_OFFSET);
	if (payload_bytes)
		XXH3_64bits_update(w->rec_sum, payload, payload_bytes);
	sum = XXH3_64bits_digest(w->rec_sum);
	hr_put_le64(h + SNAP_REC_SUM_OFFSET, sum);
	if (type != SNAP_REC_END) {
		hr_put_le64(sum_le, sum);
		XXH3_64bits_update(w->all_sums, sum_le, sizeof(sum_le));
		w->nr_records++;
	}
	w->iov[w->nr_iov++] = (struct iovec){h, SNAP_REC_HDR_BYTES};
	if (payload_bytes)
		w->iov[w->nr_iov++] = (struct iovec){(void *)payload, payload_bytes};
	if (w->nr_hdrs == SNAP_WR_MAX_RECS)
		return writer_flush(w);
	return 0;
}

/*
 * Fill w->vec[i] with 1 if page i of [hva, hva + nr_pages pages) may hold
 * data, 0 if it is certainly zero without touching it (never faulted in and
 * not swapped out: an untouched anonymous or shmem page reads as zero).
 */
static void scan_residency(struct snap_writer *w, uint8_t *hva, uint64_t nr_pages)
{
	if (!w->trust_mincore || mincore(hva, nr_pages * HR_PAGE_SIZE, w->vec) < 0) {
		memset(w->vec, 1, nr_pages);
		return;
	}
	uint64_t nr_absent = 0;
	for (uint64_t i = 0; i < nr_pages; i++) {
		w->vec[i] &= 1;
		nr_absent += !w->vec[i];
	}
	if (!nr_absent || !w->check_swap)
		return;
	/* With swap on, a non-resident anonymous page may be swapped out. */
	off_t off = (off_t)((uintptr_t)hva / HR_PAGE_SIZE * sizeof(uint64_t));
	ssize_t r = -1;
	if (w->pagemap_fd >= 0)
		r = pread(w->pagemap_fd, w->pagemap, nr_pages * sizeof(uint64_t), off);
	if (r != (ssize_t)(nr_pages * sizeof(uint64_t))) {
		memset(w->vec, 1, nr_pages);
		return;
	}
	for (uint64_t i = 0; i < nr_pages; i++)
		if (w->pagemap[i] & (3ull << 62)) /* bit 63 present, bit 62 swapped */
			w->vec[i] = 1;
}

static int write_region(struct snap_writer *w, const struct hr_mem_region *rg)
{
	uint64_t nr_pages = rg->bytes >> HR_PAGE_SHIFT;
	uint64_t base_gfn = rg->gpa >> HR_PAGE_SHIFT;
	uint64_t run_start = 0, run_len = 0;
	int rc;

	for (uint64_t chunk = 0; chunk < nr_pages; chunk += SNAP_SCAN_PAGES) {
		uint64_t n =
		    nr_pages - chunk < SNAP_SCAN_PAGES ? nr_pages - chunk : SNAP_SCAN_PAGES;

		scan_residency(w, rg->hva + chunk * HR_PAGE_SIZE, n);
		for (uint64_t i = 0; i < n; i++) {
			uint64_t p = chunk + i;
			const uint8_t *page = rg->hva + p * HR_PAGE_SIZE;
			int data = w->vec[i] && memcmp(page, zero_page, HR_PAGE_SIZE);

			if (data && run_len && run_len < SNAP_MAX_RUN_PAGES) {
				run_len++;
				continue;
			}
			if (run_len) {
				rc = writer_record(w, SNAP_REC_PAGES, base_gfn + run_start, run_len,
						   rg->hva + run_start * HR_PAGE_SIZE,
						   run_len * HR_PAGE_SIZE);
				if (rc < 0)
					return rc;
				w->nr_pages += run_len;
				run_len = 0;
			}
			if (data) {
				run_start = p;
				run_len = 1;
			}
		}
	}
	if (run_len) {
		rc = writer_record(w, SNAP_REC_PAGES, base_gfn + run_start, run_len,
				   rg->hva + run_start * HR_PAGE_SIZE, run_len * HR_PAGE_SIZE);
		if (rc < 0)
			return rc;
		w->nr_pages += run_len;
	}
	return 0;
}

static int check_layout(const char *vm, const struct hr_mem_region *regions, unsigned nr)
{
	if (nr < 1 || nr > HR_SNAP_MAX_REGIONS) {
		log_warnx(vm, "snapshot: %u memory regions (1..%u supported)", nr,
			  HR_SNAP_MAX_REGIONS);
		return -HR_ESHAPE;
	}
	for (unsigned i = 0; i < nr; i++) {
		const struct hr_mem_region *a = &regions[i];
		if (!a->bytes || a->gpa % HR_PAGE_SIZE || a->bytes % HR_PAGE_SIZE ||
		    a->gpa + a->bytes < a->gpa) {
			log_warnx(vm, "snapshot: region %u is not page aligned", i);
			return -HR_ESHAPE;
		}
		for (unsigned j = 0; j < i; j++) {
			const struct hr_mem_region *b = &regions[j];
			if (a->gpa < b->gpa + b->bytes && b->gpa < a->gpa + a->bytes) {
				log_warnx(vm, "snapshot: regions %u and %u overlap", j, i);
				return -HR_ESHAPE;
			}
		}
	}
	return 0;
}

int hr_snapshot_write(const struct hr_backend_ops *ops, struct hr_vm *vm,
		      const struct hr_vm_config *cfg, int fd)
{
	const struct hr_mem_region *regions;
	struct snap_writer *w = NULL;
	uint8_t hdr[SNAP_HDR_MAX];
	uint32_t hdr_bytes;
	void *blob = NULL;
	size_t blob_bytes = 0;
	unsigned nr;
	uint64_t t0 = hr_now_ns();
	const char *name = cfg->name;
	int rc;

	if (strlen(ops->name) >= 16 || !name || strlen(name) >= 64) {
		log_warnx(name, "snapshot: backend or vm name too long for the file header");
		return -ENAMETOOLONG;
	}
	rc = ops->mem_layout(vm, &regions, &nr);
	if (rc < 0) {
		log_warnx(name, "snapshot: mem_layout: %s", hr_strerror(rc));
		return rc;
	}
	rc = check_layout(name, regions, nr);
	if (rc < 0)
		return rc;
	rc = ops->save_state(vm, &blob, &blob_bytes);
	if (rc < 0) {
		log_warnx(name, "snapshot: save_state (is the vm paused?): %s%s%s", hr_strerror(rc),
			  ops->last_error ? ": " : "", ops->last_error ? ops->last_error(vm) : "");
		return rc;
	}
	if (blob_bytes == 0 || blob_bytes > SNAP_MAX_STATE_BYTES) {
		log_warnx(name, "snapshot: state blob of %zu bytes", blob_bytes);
		rc = -HR_EBADSTATE;
		goto out;
	}

	/* File header. */
	hdr_bytes = SNAP_HDR_FIXED + nr * SNAP_REGION_BYTES + 8;
	memset(hdr, 0, sizeof(hdr));
	memcpy(hdr, SNAP_MAGIC, 8);
	hr_put_le32(hdr + 8, HR_SNAP_VERSION);
	hr_put_le32(hdr + 12, hdr_bytes);
	memcpy(hdr + 16, ops->name, strlen(ops->name));
	memcpy(hdr + 32, name, strlen(name));
	hr_put_le64(hdr + 96, cfg->mem_bytes);
	hr_put_le32(hdr + 104, cfg->nr_vcpus);
	hr_put_le32(hdr + 108, nr);
	for (unsigned i = 0; i < nr; i++) {
		hr_put_le64(hdr + SNAP_HDR_FIXED + i * SNAP_REGION_BYTES, regions[i].gpa);
		hr_put_le64(hdr + SNAP_HDR_FIXED + i * SNAP_REGION_BYTES + 8, regions[i].bytes);
	}
	hr_put_le64(hdr + hdr_bytes - 8, XXH3_64bits(hdr, hdr_bytes - 8));
	rc = hr_write_all(fd, hdr, hdr_bytes);
	if (rc < 0) {
		log_warnx(name, "snapshot: write header: %s", hr_strerror(rc));
		goto out;
	}

	w = calloc(1, sizeof(*w));
	if (!w) {
		rc = -ENOMEM;
		goto out;
	}
	w->fd = fd;
	w->vm = name;
	w->off_bytes = hdr_bytes;
	w->pagemap_fd = -1;
	w->rec_sum = XXH3_createState();
	w->all_sums = XXH3_createState();
	w->vec = malloc(SNAP_SCAN_PAGES);
	if (!w->rec_sum || !w->all_sums || !w->vec) {
		rc = -ENOMEM;
		goto out;
	}
	XXH3_64bits_reset(w->all_sums);
	w->trust_mincore = sysconf(_SC_PAGESIZE) == HR_PAGE_SIZE;
	for (unsigned i = 0; i < nr; i++)
		if ((uintptr_t)regions[i].hva % HR_PAGE_SIZE)
			w->trust_mincore = 0;
	struct sysinfo si;
	w->check_swap = sysinfo(&si) < 0 || si.totalswap > 0;
	if (w->trust_mincore && w->check_swap) {
		w->pagemap = malloc(SNAP_SCAN_PAGES * sizeof(uint64_t));
		if (w->pagemap)
			w->pagemap_fd = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
	}

	/* Regions in gpa order, so that page records have increasing gfns. */
	unsigned order[HR_SNAP_MAX_REGIONS];
	for (unsigned i = 0; i < nr; i++) {
		unsigned j = i;
		for (; j && regions[order[j - 1]].gpa > regions[i].gpa; j--)
			order[j] = order[j - 1];
		order[j] = i;
	}
	for (unsigned i = 0; i < nr; i++) {
		rc = write_region(w, &regions[order[i]]);
		if (rc < 0)
			goto out;
	}
	rc = writer_record(w, SNAP_REC_STATE, blob_bytes, 0, blob, blob_bytes);
	if (rc < 0)
		goto out;
	rc =
	    writer_record(w, SNAP_REC_END, w->nr_records, XXH3_64bits_digest(w->all_sums), NULL, 0);
	if (rc < 0)
		goto out;
	rc = writer_flush(w);
	if (rc < 0)
		goto out;
	log_info(name,
		 "snapshot: wrote %" PRIu64 " pages in %" PRIu64 " records, %" PRIu64
		 " bytes, %" PRIu64 " ms",
		 w->nr_pages, w->nr_records, w->off_bytes, (hr_now_ns() - t0) / 1000000);
out:
	if (w) {
		if (w->pagemap_fd >= 0)
			close(w->pagemap_fd);
		free(w->pagemap);
		free(w->vec);
		XXH3_freeState(w->rec_sum);
		XXH3_freeState(w->all_sums);
		free(w);
	}
	free(blob);
	return rc;
}

/* ---- reader ------------------------------------------------------------ */

struct snap_reader {
	int fd;
	uint64_t off_bytes;
	const char *vm; /* from the header once read; NULL before */
};

static int reader_get(struct snap_reader *r, void *buf, uint64_t len, const char *what)
{
	int rc = hr_read_all(r->fd, buf, len);

	if (rc == -HR_EBADSNAP)
		log_warnx(r->vm, "snapshot: truncated at offset %" PRIu64 " (reading %s)",
			  r->off_bytes, what);
	else if (rc < 0)
		log_warnx(r->vm, "snapshot: read at offset %" PRIu64 ": %s", r->off_bytes,
			  hr_strerror(rc));
	else
		r->off_bytes += len;
	return rc;
}

static int read_header(struct snap_reader *r, struct hr_snapshot_info *info,
		       struct hr_mem_region *regions, unsigned *nr_r)
{
	uint8_t hdr[SNAP_HDR_MAX];
	uint32_t hdr_bytes, nr;
	int rc;

	memset(info, 0, sizeof(*info));
	rc = reader_get(r, hdr, SNAP_HDR_FIXED, "file header");
	if (rc < 0)
		return rc;
	if (memcmp(hdr, SNAP_MAGIC, 8)) {
		log_warnx(NULL, "snapshot: bad magic at offset 0: not a hareplicate snapshot");
		return -HR_EBADSNAP;
	}
	info->version = hr_get_le32(hdr + 8);
	if (info->version != HR_SNAP_VERSION) {
		log_warnx(NULL, "snapshot: format version %u at offset 8, this build reads %u",
			  info->version, HR_SNAP_VERSION);
		return -HR_EVERSION;
	}
	hdr_bytes = hr_get_le32(hdr + 12);
	nr = hr_get_le32(hdr + 108);
	if (nr < 1 || nr > HR_SNAP_MAX_REGIONS ||
	    hdr_bytes != SNAP_HDR_FIXED + nr * SNAP_REGION_BYTES + 8) {
		log_warnx(NULL, "snapshot: bad header length %u / %u regions", hdr_bytes, nr);
		return -HR_EBADSNAP;
	}
	rc = reader_get(r, hdr + SNAP_HDR_FIXED, hdr_bytes - SNAP_HDR_FIXED, "region table");
	if (rc < 0)
		return rc;
	if (XXH3_64bits(hdr, hdr_bytes - 8) != hr_get_le64(hdr + hdr_bytes - 8)) {
		log_warnx(NULL, "snapshot: header checksum mismatch at offset %u", hdr_bytes - 8);
		return -HR_ECHECKSUM;
	}
	if (!memchr(hdr + 16, 0, 16) || !memchr(hdr + 32, 0, 64)) {
		log_warnx(NULL, "snapshot: unterminated name in header");
		return -HR_EBADSNAP;
	}
	memcpy(info->backend, hdr + 16, 16);
	memcpy(info->vm_name, hdr + 32, 64);
	info->mem_bytes = hr_get_le64(hdr + 96);
	info->nr_vcpus = hr_get_le32(hdr + 104);
	for (unsigned i = 0; i < nr; i++) {
		regions[i].gpa = hr_get_le64(hdr + SNAP_HDR_FIXED + i * SNAP_REGION_BYTES);
		regions[i].bytes = hr_get_le64(hdr + SNAP_HDR_FIXED + i * SNAP_REGION_BYTES + 8);
		regions[i].hva = NULL;
	}
	if (info->nr_vcpus < 1 || info->nr_vcpus > HR_MAX_VCPUS ||
	    check_layout(info->vm_name, regions, nr) < 0) {
		log_warnx(info->vm_name, "snapshot: header describes an impossible vm shape");
		return -HR_EBADSNAP;
	}
	*nr_r = nr;
	return 0;
}

int hr_snapshot_read_info(int fd, struct hr_snapshot_info *info_r)
{
	struct hr_mem_region regions[HR_SNAP_MAX_REGIONS];
	struct snap_reader r = {.fd = fd};
	unsigned nr;

	return read_header(&r, info_r, regions, &nr);
}

/* Find the mapping of gfn run [gfn, gfn + nr_pages) inside one region; NULL if none. */
static uint8_t *run_hva(const struct hr_mem_region *regions, unsigned nr, uint64_t gfn,
			uint64_t nr_pages)
{
	if (gfn > UINT64_MAX >> HR_PAGE_SHIFT || nr_pages > UINT64_MAX >> HR_PAGE_SHIFT)
		return NULL;
	uint64_t gpa = gfn << HR_PAGE_SHIFT, bytes = nr_pages << HR_PAGE_SHIFT;
	for (unsigned i = 0; i < nr; i++)
		if (gpa >= regions[i].gpa && gpa - regions[i].gpa <= regions[i].bytes &&
		    bytes <= regions[i].bytes - (gpa - regions[i].gpa))
			return regions[i].hva + (gpa - regions[i].gpa);
	return NULL;
}

int hr_snapshot_read(const struct hr_backend_ops *ops, struct hr_vm *vm, int fd)
{
	struct hr_mem_region file_regions[HR_SNAP_MAX_REGIONS];
	const struct hr_mem_region *regions;
	struct hr_snapshot_info info;
	struct snap_reader r = {.fd = fd};
	XXH3_state_t *rec_sum = NULL, *all_sums = NULL;
	uint64_t nr_records = 0, nr_pages = 0, next_gfn = 0, blob_bytes = 0;
	uint64_t t0 = hr_now_ns();
	uint8_t *blob = NULL;
	unsigned nr, nr_file;
	int rc;

	rc = read_header(&r, &info, file_regions, &nr_file);
	if (rc < 0)
		return rc;
	r.vm = info.vm_name;
	if (strcmp(info.backend, ops->name)) {
		log_warnx(r.vm, "snapshot: written by backend \"%s\", restoring into \"%s\"",
			  info.backend, ops->name);
		return -HR_ESHAPE;
	}
	rc = ops->mem_layout(vm, &regions, &nr);
	if (rc < 0) {
		log_warnx(r.vm, "snapshot: mem_layout: %s", hr_strerror(rc));
		return rc;
	}
	if (nr != nr_file) {
		log_warnx(r.vm, "snapshot: file has %u memory regions, vm has %u", nr_file, nr);
		return -HR_ESHAPE;
	}
	for (unsigned i = 0; i < nr; i++)
		if (regions[i].gpa != file_regions[i].gpa ||
		    regions[i].bytes != file_regions[i].bytes) {
			log_warnx(r.vm,
				  "snapshot: region %u is gpa 0x%" PRIx64 "+%" PRIu64
				  " bytes in the file, 0x%" PRIx64 "+%" PRIu64 " in the vm",
				  i, file_regions[i].gpa, file_regions[i].bytes, regions[i].gpa,
				  regions[i].bytes);
			return -HR_ESHAPE;
		}

	rec_sum = XXH3_createState();
	all_sums = XXH3_createState();
	if (!rec_sum || !all_sums) {
		rc = -ENOMEM;
		goto out;
	}
	XXH3_64bits_reset(all_sums);
	for (;;) {
		uint8_t h[SNAP_REC_HDR_BYTES], sum_le[8];
		uint64_t rec_off = r.off_bytes;

		rc = reader_get(&r, h, sizeof(h), "record header");
		if (rc < 0)
			goto out;
		uint32_t type = hr_get_le32(h);
		uint64_t a = hr_get_le64(h + 8), b = hr_get_le64(h + 16), sum = hr_get_le64(h + 24);
		if (hr_get_le32(h + 4)) {
			log_warnx(r.vm, "snapshot: record at offset %" PRIu64 " has unknown flags",
				  rec_off);
			rc = -HR_EBADSNAP;
			goto out;
		}
		XXH3_64bits_reset(rec_sum);
		XXH3_64bits_update(rec_sum, h, SNAP_REC_SUM_OFFSET);

		if (type == SNAP_REC_PAGES) {
			uint8_t *hva = run_hva(regions, nr, a, b);
			if (blob || !b || a < next_gfn || !hva) {
				log_warnx(r.vm,
					  "snapshot: page record at offset %" PRIu64
					  " (gfn 0x%" PRIx64 " +%" PRIu64
					  ") out of order or outside the memory layout",
					  rec_off, a, b);
				rc = -HR_EBADSNAP;
				goto out;
			}
			uint64_t left = b << HR_PAGE_SHIFT;
			while (left) {
				uint64_t n = left < SNAP_READ_CHUNK ? left : SNAP_READ_CHUNK;
				rc = reader_get(&r, hva, n, "page data");
				if (rc < 0)
					goto out;
				XXH3_64bits_update(rec_sum, hva, n);
				hva += n;
				left -= n;
			}
			next_gfn = a + b;
			nr_pages += b;
		} else if (type == SNAP_REC_STATE) {
			if (blob || !a || a > SNAP_MAX_STATE_BYTES || b) {
				log_warnx(r.vm,
					  "snapshot: bad state record at offset %" PRIu64
					  " (%" PRIu64 " bytes)",
					  rec_off, a);
				rc = -HR_EBADSNAP;
				goto out;
			}
			blob = malloc(a);
			if (!blob) {
				rc = -ENOMEM;
				goto out;
			}
			blob_bytes = a;
			rc = reader_get(&r, blob, a, "state blob");
			if (rc < 0)
				goto out;
			XXH3_64bits_update(rec_sum, blob, a);
		} else if (type != SNAP_REC_END) {
			log_warnx(r.vm, "snapshot: unknown record type %u at offset %" PRIu64, type,
				  rec_off);
			rc = -HR_EBADSNAP;
			goto out;
		}
		if (XXH3_64bits_digest(rec_sum) != sum) {
			log_warnx(
			    r.vm,
			    "snapshot: checksum mismatch in record type %u at offset %" PRIu64,
			    type, rec_off);
			rc = -HR_ECHECKSUM;
			goto out;
		}
		if (type == SNAP_REC_END) {
			if (!blob || a != nr_records) {
				log_warnx(r.vm,
					  "snapshot: end record at offset %" PRIu64
					  " counts %" PRIu64 " records, read %" PRIu64 "%s",
					  rec_off, a, nr_records, blob ? "" : ", no state record");
				rc = -HR_EBADSNAP;
				goto out;
			}
			if (b != XXH3_64bits_digest(all_sums)) {
				log_warnx(
				    r.vm,
				    "snapshot: record checksum chain mismatch at offset %" PRIu64,
				    rec_off);
				rc = -HR_ECHECKSUM;
				goto out;
			}
			break;
		}
		hr_put_le64(sum_le, sum);
		XXH3_64bits_update(all_sums, sum_le, sizeof(sum_le));
		nr_records++;
	}

	/* A snapshot file ends with its end record. */
	uint8_t extra;
	ssize_t n;
	do
		n = read(fd, &extra, 1);
	while (n < 0 && errno == EINTR);
	if (n != 0) {
		rc = n < 0 ? -errno : -HR_EBADSNAP;
		log_warnx(r.vm, "snapshot: %s after the end record at offset %" PRIu64,
			  n < 0 ? hr_strerror(rc) : "trailing bytes", r.off_bytes);
		goto out;
	}

	/* Everything verified: now, and only now, the state. */
	rc = ops->load_state(vm, blob, blob_bytes);
	if (rc < 0) {
		log_warnx(r.vm, "snapshot: load_state: %s%s%s", hr_strerror(rc),
			  ops->last_error ? ": " : "", ops->last_error ? ops->last_error(vm) : "");
		goto out;
	}
	log_info(r.vm,
		 "snapshot: restored %" PRIu64 " pages in %" PRIu64 " records, %" PRIu64
		 " bytes, %" PRIu64 " ms",
		 nr_pages, nr_records, r.off_bytes, (hr_now_ns() - t0) / 1000000);
out:
	XXH3_freeState(rec_sum);
	XXH3_freeState(all_sums);
	free(blob);
	return rc;
}
