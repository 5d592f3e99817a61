// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * fsops.c - small throughput workloads for scripts/bench.sh.
 *
 *   fsops seqwrite FILE MIB        write MIB MiB with 1 MiB writes, fdatasync; prints MB/s
 *   fsops seqread FILE             read the whole file with 1 MiB reads; prints MB/s
 *   fsops create DIR N             N x (create, write 4 KiB, close) in DIR; prints files/s
 *   fsops mktree DIR NDIRS NFILES  DIR/dNNNN/fNNNNN, empty files; DIR is created if
 *                                  missing (setup, prints nothing)
 *   fsops stattree DIR             readdir + fstatat(AT_SYMLINK_NOFOLLOW) of every entry
 *                                  of the tree; prints "entries entries_per_s"
 * MB is 10^6 bytes. Timing includes the final fdatasync for seqwrite. Exit 0 on
 * success, 1 on I/O errors (message on stderr), 2 on usage errors.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define FS_CHUNK (1 << 20)

static double
now_s(void)
{
	struct timespec ts;

	(void)clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int
die(const char *what, const char *arg)
{
	fprintf(stderr, "fsops: %s %s: %s\n", what, arg, strerror(errno));
	return 1;
}

static int
seqwrite(const char *path, long mib)
{
	static unsigned char buf[FS_CHUNK];
	double t0;
	long i;
	int fd;

	for (i = 0; i < FS_CHUNK; i++)
		buf[i] = (unsigned char)(i * 251 + 1);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd == -1)
		return die("open", path);
	t0 = now_s();
	for (i = 0; i < mib; i++) {
		buf[0] = (unsigned char)i;
		if (write(fd, buf, FS_CHUNK) != FS_CHUNK)
			return die("write", path);
	}
	if (fdatasync(fd) == -1)
		return die("fdatasync", path);
	printf("%.1f\n", (double)mib * FS_CHUNK / 1e6 / (now_s() - t0));
	return close(fd) == -1 ? die("close", path) : 0;
}

static int
seqread(const char *path)
{
	static unsigned char buf[FS_CHUNK];
	double t0;
	uint64_t total = 0;
	ssize_t n;
	int fd;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd == -1)
		return die("open", path);
	t0 = now_s();
	while ((n = read(fd, buf, sizeof(buf))) > 0)
		total += (uint64_t)n;
	if (n == -1)
		return die("read", path);
	printf("%.1f\n", (double)total / 1e6 / (now_s() - t0));
	(void)close(fd);
	return 0;
}

static int
create_files(const char *dir, long n)
{
	static unsigned char buf[4096];
	char p[4096];
	double t0;
	long i;
	int dfd, fd;

	memset(buf, 'c', sizeof(buf));
	dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd == -1)
		return die("open", dir);
	t0 = now_s();
	for (i = 0; i < n; i++) {
		(void)snprintf(p, sizeof(p), "f%07ld", i);
		fd = openat(dfd, p, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
		if (fd == -1)
			return die("create", p);
		if (write(fd, buf, sizeof(buf)) != (ssize_t)sizeof(buf))
			return die("write", p);
		if (close(fd) == -1)
			return die("close", p);
	}
	printf("%.0f\n", (double)n / (now_s() - t0));
	(void)close(dfd);
	return 0;
}

static int
mktree(const char *dir, long ndirs, long nfiles)
{
	char p[4096];
	long d, f;
	int fd;

	if (mkdir(dir, 0755) == -1 && errno != EEXIST)
		return die("mkdir", dir);
	for (d = 0; d < ndirs; d++) {
		(void)snprintf(p, sizeof(p), "%s/d%04ld", dir, d);
		if (mkdir(p, 0755) == -1 && errno != EEXIST)
			return die("mkdir", p);
		for (f = 0; f < nfiles; f++) {
			(void)snprintf(p, sizeof(p), "%s/d%04ld/f%05ld", dir, d, f);
			fd = open(p, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
			if (fd == -1)
				return die("create", p);
			(void)close(fd);
		}
	}
	return 0;
}

static long
walk(int dfd, const char *name)
{
	struct dirent *de;
	struct stat st;
	long count = 0, sub;
	DIR *dp;
	int fd;

	fd = openat(dfd, name, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd == -1)
		return -1;
	dp = fdopendir(fd);
	if (dp == NULL) {
		(void)close(fd);
		return -1;
	}
	while ((de = readdir(dp)) != NULL) {
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		if (fstatat(fd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) == -1) {
			(void)closedir(dp);
			return -1;
		}
		count++;
		if (S_ISDIR(st.st_mode)) {
			sub = walk(fd, de->d_name);
			if (sub < 0) {
				(void)closedir(dp);
				return -1;
			}
			count += sub;
		}
	}
	(void)closedir(dp);
	return count;
}

static int
stattree(const char *dir)
{
	double t0 = now_s(), dt;
	long n = walk(AT_FDCWD, dir);

	if (n < 0)
		return die("walk", dir);
	dt = now_s() - t0;
	printf("%ld %.0f\n", n, (double)n / dt);
	return 0;
}

int
main(int argc, char **argv)
{
	if (argc == 4 && strcmp(argv[1], "seqwrite") == 0)
		return seqwrite(argv[2], strtol(argv[3], NULL, 10));
	if (argc == 3 && strcmp(argv[1], "seqread") == 0)
		return seqread(argv[2]);
	if (argc == 4 && strcmp(argv[1], "create") == 0)
		return create_files(argv[2], strtol(argv[3], NULL, 10));
	if (argc == 5 && strcmp(argv[1], "mktree") == 0)
		return mktree(argv[2], strtol(argv[3], NULL, 10), strtol(argv[4], NULL, 10));
	if (argc == 3 && strcmp(argv[1], "stattree") == 0)
		return stattree(argv[2]);
	fprintf(stderr, "usage: fsops seqwrite FILE MIB | seqread FILE | create DIR N |\n"
	                "       mktree DIR NDIRS NFILES | stattree DIR\n");
	return 2;
}
