/* A fault-injecting write layer for the hostile-input suite (LD_PRELOAD; no root, no tmpfs):
 * write(2) and pwrite(2) on a file whose path starts with $CALIBENCH_FAULT_DIR fail with
 * ENOSPC ("No space left on device") once $CALIBENCH_FAULT_BYTES bytes (default 0) have been
 * written to such files by the process. Other files (stdout, stderr, everything outside the
 * folder) are untouched. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <unistd.h>

static long long written = 0;

/* True when `fd` is a file under $CALIBENCH_FAULT_DIR. */
static int watched(int fd) {
  const char* dir = getenv("CALIBENCH_FAULT_DIR");
  if (dir == NULL || dir[0] == '\0' || fd <= 2) return 0;
  char link[64];
  char path[4096];
  snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
  const ssize_t len = readlink(link, path, sizeof path - 1);
  if (len <= 0) return 0;
  path[len] = '\0';
  return strncmp(path, dir, strlen(dir)) == 0;
}

/* How many of `n` bytes a watched file may still take: what is left of the budget. */
static size_t allowed(size_t n) {
  const char* budget_text = getenv("CALIBENCH_FAULT_BYTES");
  const long long left = (budget_text != NULL ? atoll(budget_text) : 0) - written;
  if (left <= 0) return 0;
  return (long long)n < left ? n : (size_t)left;
}

ssize_t write(int fd, const void* buf, size_t n) {
  static ssize_t (*real)(int, const void*, size_t) = NULL;
  if (real == NULL) real = (ssize_t(*)(int, const void*, size_t))dlsym(RTLD_NEXT, "write");
  if (!watched(fd)) return real(fd, buf, n);
  const size_t ok = allowed(n);
  if (n > 0 && ok == 0) {
    errno = ENOSPC;
    return -1;
  }
  const ssize_t w = real(fd, buf, ok);
  if (w > 0) written += w;
  return w;
}

ssize_t pwrite(int fd, const void* buf, size_t n, off_t offset) {
  static ssize_t (*real)(int, const void*, size_t, off_t) = NULL;
  if (real == NULL) real = (ssize_t(*)(int, const void*, size_t, off_t))dlsym(RTLD_NEXT, "pwrite");
  if (!watched(fd)) return real(fd, buf, n, offset);
  const size_t ok = allowed(n);
  if (n > 0 && ok == 0) {
    errno = ENOSPC;
    return -1;
  }
  const ssize_t w = real(fd, buf, ok, offset);
  if (w > 0) written += w;
  return w;
}

ssize_t pwrite64(int fd, const void* buf, size_t n, off_t offset) { return pwrite(fd, buf, n, offset); }
