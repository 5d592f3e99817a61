// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * lat.c - 4 KiB overwrite + fdatasync latency, for scripts/bench.sh.
 *
 * usage: lat FILE OPS [FILE_MIB]
 * Preallocates FILE (FILE_MIB MiB of real data, default 64, fsynced), then does OPS
 * times: pwrite 4 KiB at a random 4 KiB-aligned offset, fdatasync; each pair timed
 * with CLOCK_MONOTONIC. Prints one line: "p50_us p99_us mean_us ops_per_s".
 * Exit 0 on success, 1 on any I/O error (message on stderr), 2 on usage errors.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define LAT_BLOCK 4096

static uint64_t
now_ns(void)
{
	struct timespec ts;

	(void)clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static int
cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

int
main(int argc, char **argv)
{
	static unsigned char buf[1 << 20];
	uint64_t *lat, t0, sum = 0, rng = 88172645463325252ULL;
	long ops, mib, i, nblocks;
	int fd;

	if (argc < 3 || argc > 4) {
		fprintf(stderr, "usage: lat FILE OPS [FILE_MIB]\n");
		return 2;
	}
	ops = strtol(argv[2], NULL, 10);
	mib = argc == 4 ? strtol(argv[3], NULL, 10) : 64;
	if (ops < 1 || mib < 1) {
		fprintf(stderr, "lat: OPS and FILE_MIB must be positive\n");
		return 2;
	}
	lat = calloc((size_t)ops, sizeof(*lat));
	if (lat == NULL)
		return 1;
	for (i = 0; i < (long)sizeof(buf); i++)
		buf[i] = (unsigned char)(i * 131 + 7);
	fd = open(argv[1], O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd == -1) {
		fprintf(stderr, "lat: open %s: %s\n", argv[1], strerror(errno));
		return 1;
	}
	for (i = 0; i < mib; i++) {
		if (pwrite(fd, buf, sizeof(buf), (off_t)i * (off_t)sizeof(buf)) !=
		    (ssize_t)sizeof(buf)) {
			fprintf(stderr, "lat: preallocate: %s\n", strerror(errno));
			return 1;
		}
	}
	if (fsync(fd) == -1) {
		fprintf(stderr, "lat: fsync: %s\n", strerror(errno));
		return 1;
	}
	nblocks = mib * (1 << 20) / LAT_BLOCK;
	for (i = 0; i < ops; i++) {
		off_t off;

		rng ^= rng << 13;
		rng ^= rng >> 7;
		rng ^= rng << 17;
		off = (off_t)(rng % (uint64_t)nblocks) * LAT_BLOCK;
		buf[i % LAT_BLOCK] ^= 0x5a;
		t0 = now_ns();
		if (pwrite(fd, buf, LAT_BLOCK, off) != LAT_BLOCK || fdatasync(fd) == -1) {
			fprintf(stderr, "lat: write/fdatasync: %s\n", strerror(errno));
			return 1;
		}
		lat[i] = now_ns() - t0;
		sum += lat[i];
	}
	(void)close(fd);
	qsort(lat, (size_t)ops, sizeof(*lat), cmp_u64);
	printf("%.1f %.1f %.1f %.0f\n", (double)lat[ops / 2] / 1e3,
	       (double)lat[(ops * 99) / 100 < ops ? (ops * 99) / 100 : ops - 1] / 1e3,
	       (double)sum / (double)ops / 1e3, (double)ops / ((double)sum / 1e9));
	free(lat);
	return 0;
}
