/*
 * t-aio.c - src/disk/aio: reads, writes, flushes and zeroing on an image,
 * with both engines (io_uring and HR_DISK_AIO=threads); errors reach the
 * callback (readonly image, range past the end, injected faults, a full
 * file system: a 64 KiB tmpfs mounted in a mount namespace of our own);
 * drain waits for everything in flight; callbacks run on the aio's threads.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "tap.h"
#include "disk/aio.h"

#define IMG_BYTES (1u << 20)
#define NR_MANY	  64

struct done {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	unsigned nr;
	int result[NR_MANY + 8];
	int on_submitter;
};

static pthread_t main_thread;
static struct done D = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, {0}, 0};

static void on_done(struct hr_aio_req *req, int result)
{
	pthread_mutex_lock(&D.lock);
	D.result[(uintptr_t)req->opaque] = result;
	D.nr++;
	if (pthread_equal(pthread_self(), main_thread))
		D.on_submitter = 1;
	pthread_cond_broadcast(&D.cond);
	pthread_mutex_unlock(&D.lock);
}

static void reset_done(void)
{
	pthread_mutex_lock(&D.lock);
	D.nr = 0;
	for (unsigned i = 0; i < NR_MANY + 8; i++)
		D.result[i] = 1; /* "not called" */
	pthread_mutex_unlock(&D.lock);
}

/* Wait (10 s at most) until n callbacks ran. */
static int wait_done(unsigned n)
{
	struct timespec dl;
	clock_gettime(CLOCK_REALTIME, &dl);
	dl.tv_sec += 10;
	pthread_mutex_lock(&D.lock);
	int rc = 0;
	while (D.nr < n && rc == 0)
		rc = pthread_cond_timedwait(&D.cond, &D.lock, &dl);
	int got = D.nr >= n;
	pthread_mutex_unlock(&D.lock);
	return got;
}

static int one(struct hr_aio *aio, struct hr_aio_req *r, unsigned slot)
{
	reset_done();
	r->done = on_done;
	r->opaque = (void *)(uintptr_t)slot;
	if (hr_aio_submit(aio, r) < 0)
		return 2;
	if (!wait_done(1))
		return 3;
	return D.result[slot];
}

static void make_file(const char *path, uint64_t bytes)
{
	int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
	if (fd < 0 || ftruncate(fd, (off_t)bytes) < 0)
		bail("cannot create %s: %s", path, strerror(errno));
	close(fd);
}

static void test_engine(const char *engine, const char *dir)
{
	char path[256], why[256] = "";
	struct hr_image img, ro;
	struct hr_aio *aio = NULL, *aio_ro = NULL;

	setenv("HR_DISK_AIO", engine, 1);
	snprintf(path, sizeof(path), "%s/img-%s", dir, engine);
	make_file(path, IMG_BYTES);
	if (hr_image_open(&img, path, 0, why, sizeof(why)) < 0)
		bail("open %s: %s", path, why);
	int rc = hr_aio_create(&aio, &img, 32, why, sizeof(why));
	ok(rc == 0 && !strcmp(hr_aio_engine(aio), engine), "%s: aio created, engine %s", engine,
	   aio ? hr_aio_engine(aio) : why);
	if (rc)
		return;

	/* a write of three segments, read back as two */
	static uint8_t a[1000], b[3000], c[96], back[8192];
	memset(a, 0xa1, sizeof(a));
	memset(b, 0xb2, sizeof(b));
	memset(c, 0xc3, sizeof(c));
	struct iovec wv[3] = {{a, sizeof(a)}, {b, sizeof(b)}, {c, sizeof(c)}};
	struct hr_aio_req r = {.op = HR_AIO_WRITE, .off = 8192, .iov = wv, .nr_iov = 3};
	ok(one(aio, &r, 0) == 0, "%s: a 3-segment write of 4 KiB completes with 0", engine);
	ok(!D.on_submitter, "%s: the callback ran on an aio thread", engine);
	uint8_t file[4192];
	ok(hr_image_pread(&img, file, 4192, 8192) == 0 && file[0] == 0xa1 && file[999] == 0xa1 &&
	       file[1000] == 0xb2 && file[3999] == 0xb2 && file[4000] == 0xc3 &&
	       file[4095] == 0xc3 && file[4096] == 0,
	   "%s: the image holds the segments in order", engine);
	memset(back, 0, sizeof(back));
	struct iovec rv[2] = {{back, 1500}, {back + 1500, 2596}};
	r = (struct hr_aio_req){.op = HR_AIO_READ, .off = 8192, .iov = rv, .nr_iov = 2};
	ok(one(aio, &r, 1) == 0 && !memcmp(back, file, 4096),
	   "%s: a 2-segment read returns what was written", engine);

	r = (struct hr_aio_req){.op = HR_AIO_FLUSH};
	ok(one(aio, &r, 2) == 0, "%s: flush completes with 0", engine);

	r = (struct hr_aio_req){.op = HR_AIO_ZERO, .off = 8192 + 512, .len = 2048};
	ok(one(aio, &r, 3) == 0, "%s: zeroing completes with 0", engine);
	ok(hr_image_pread(&img, file, 4096, 8192) == 0 && file[511] == 0xa1 && file[512] == 0 &&
	       file[2559] == 0 && file[2560] == 0xb2,
	   "%s: exactly the zeroed range reads zero", engine);

	/* errors reach the callback */
	struct iovec one_v = {back, 1024};
	r = (struct hr_aio_req){
	    .op = HR_AIO_READ, .off = IMG_BYTES - 512, .iov = &one_v, .nr_iov = 1};
	ok(one(aio, &r, 4) == -EINVAL, "%s: a read past the end completes with -EINVAL", engine);
	r = (struct hr_aio_req){.op = HR_AIO_ZERO, .off = IMG_BYTES, .len = 512};
	ok(one(aio, &r, 5) == -EINVAL, "%s: zeroing past the end completes with -EINVAL", engine);
	hr_aio_inject(aio, 1u << HR_AIO_READ, -EIO, 1);
	one_v = (struct iovec){back, 512};
	r = (struct hr_aio_req){.op = HR_AIO_READ, .off = 0, .iov = &one_v, .nr_iov = 1};
	ok(one(aio, &r, 6) == -EIO, "%s: an injected fault completes with -EIO", engine);
	one_v = (struct iovec){back, 512};
	r = (struct hr_aio_req){.op = HR_AIO_READ, .off = 0, .iov = &one_v, .nr_iov = 1};
	ok(one(aio, &r, 7) == 0, "%s: the injection was for one request only", engine);
	r = (struct hr_aio_req){.op = HR_AIO_READ, .iov = NULL, .nr_iov = 0, .done = on_done};
	ok(hr_aio_submit(aio, &r) == -EINVAL, "%s: a read without an iovec is refused at submit",
	   engine);

	if (hr_image_open(&ro, path, 1, why, sizeof(why)) < 0 ||
	    hr_aio_create(&aio_ro, &ro, 8, why, sizeof(why)) < 0)
		bail("readonly image: %s", why);
	one_v = (struct iovec){a, 512};
	r = (struct hr_aio_req){.op = HR_AIO_WRITE, .off = 0, .iov = &one_v, .nr_iov = 1};
	ok(one(aio_ro, &r, 0) == -EROFS, "%s: a write to a readonly image completes with -EROFS",
	   engine);
	r = (struct hr_aio_req){.op = HR_AIO_ZERO, .off = 0, .len = 512};
	ok(one(aio_ro, &r, 1) == -EROFS, "%s: zeroing a readonly image completes with -EROFS",
	   engine);
	one_v = (struct iovec){back, 512};
	r = (struct hr_aio_req){.op = HR_AIO_READ, .off = 8192, .iov = &one_v, .nr_iov = 1};
	ok(one(aio_ro, &r, 2) == 0 && back[0] == 0xa1, "%s: reading a readonly image works",
	   engine);
	hr_aio_destroy(aio_ro);
	hr_image_close(&ro);

	/* many in flight; drain waits for all of them */
	static uint8_t blocks[NR_MANY][4096];
	static struct iovec mv[NR_MANY];
	static struct hr_aio_req mr[NR_MANY];
	reset_done();
	for (unsigned i = 0; i < NR_MANY; i++) {
		memset(blocks[i], (int)(i + 1), sizeof(blocks[i]));
		mv[i] = (struct iovec){blocks[i], sizeof(blocks[i])};
		mr[i] = (struct hr_aio_req){.op = i % 8 == 7 ? HR_AIO_FLUSH : HR_AIO_WRITE,
					    .off = 65536 + 4096ull * i,
					    .iov = &mv[i],
					    .nr_iov = 1,
					    .done = on_done,
					    .opaque = (void *)(uintptr_t)i};
		if (hr_aio_submit(aio, &mr[i]) < 0)
			bail("submit %u", i);
	}
	hr_aio_drain(aio);
	pthread_mutex_lock(&D.lock);
	unsigned nr = D.nr, bad = 0;
	for (unsigned i = 0; i < NR_MANY; i++)
		bad += D.result[i] != 0;
	pthread_mutex_unlock(&D.lock);
	ok(nr == NR_MANY && bad == 0 && hr_aio_inflight(aio) == 0,
	   "%s: after drain all %u requests completed with 0 (%u called, %u failed)", engine,
	   NR_MANY, nr, bad);
	unsigned wrong = 0;
	for (unsigned i = 0; i < NR_MANY; i++) {
		if (hr_image_pread(&img, file, 4096, 65536 + 4096ull * i) < 0)
			wrong++;
		else if (i % 8 != 7 && (file[0] != i + 1 || file[4095] != i + 1))
			wrong++;
	}
	ok(wrong == 0, "%s: every concurrent write landed at its offset", engine);
	hr_aio_destroy(aio);
	hr_image_close(&img);
	unlink(path);
}

/* A full file system: a 64 KiB tmpfs in a private mount namespace. */
static int full_fs_setup(char *mnt, size_t n)
{
	if (unshare(CLONE_NEWNS) < 0) {
		diag("unshare(CLONE_NEWNS): %s", strerror(errno));
		return -1;
	}
	if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0) {
		diag("making / private: %s", strerror(errno));
		return -1;
	}
	snprintf(mnt, n, "/tmp/t-aio-full.%d", (int)getpid());
	if (mkdir(mnt, 0700) < 0 && errno != EEXIST)
		return -1;
	if (mount("t-aio", mnt, "tmpfs", 0, "size=64k") < 0) {
		diag("mounting a tmpfs: %s", strerror(errno));
		rmdir(mnt);
		return -1;
	}
	return 0;
}

static void test_full(const char *engine, const char *mnt)
{
	char path[300], why[256];
	struct hr_image img;
	struct hr_aio *aio;

	setenv("HR_DISK_AIO", engine, 1);
	snprintf(path, sizeof(path), "%s/full-%s", mnt, engine);
	make_file(path, IMG_BYTES); /* sparse: 1 MiB on a 64 KiB file system */
	if (hr_image_open(&img, path, 0, why, sizeof(why)) < 0 ||
	    hr_aio_create(&aio, &img, 8, why, sizeof(why)) < 0)
		bail("full: %s", why);
	static uint8_t big[256 << 10];
	memset(big, 0x5a, sizeof(big));
	struct iovec v = {big, sizeof(big)};
	struct hr_aio_req r = {.op = HR_AIO_WRITE, .off = 0, .iov = &v, .nr_iov = 1};
	int rc = one(aio, &r, 0);
	ok(rc == -ENOSPC, "%s: a write to a full file system completes with -ENOSPC (%d)", engine,
	   rc);
	hr_aio_destroy(aio);
	hr_image_close(&img);
	unlink(path);
}

int main(void)
{
	char dir[] = "/tmp/t-aio.XXXXXX", mnt[128];
	main_thread = pthread_self();
	/* before any thread exists: unshare(CLONE_NEWNS) refuses a threaded process */
	int have_full = getuid() == 0 && full_fs_setup(mnt, sizeof(mnt)) == 0;
	if (!mkdtemp(dir))
		bail("mkdtemp: %s", strerror(errno));
	plan(2 * 18 + 2);
	test_engine("io_uring", dir);
	test_engine("threads", dir);
	if (have_full) {
		test_full("io_uring", mnt);
		test_full("threads", mnt);
		umount(mnt);
		rmdir(mnt);
	} else {
		ok(1, "# SKIP full file system: needs root and a mount namespace");
		ok(1, "# SKIP full file system: needs root and a mount namespace");
	}
	rmdir(dir);
	return tap_done();
}
