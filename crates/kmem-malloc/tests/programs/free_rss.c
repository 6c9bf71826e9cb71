/* Allocates a working set of MIB MiB (default 2048) in blocks of 16 B to 64 KiB (a mix of
 * small objects and buffers, as a program's heap holds), writes every block, frees it all in
 * a shuffled order (or, with the argument "lifo", last allocated first; with "big", the blocks
 * are 128 KiB to 1 MiB, which glibc serves from mmap), and prints the resident size (VmRSS) at the peak, right after the frees
 * and every 250 ms for SECS seconds after, in KiB: "peak K", "freed K", "t=MS K".
 * Used by scripts/malloc-bench ("after freeing a 2 GiB working set RSS falls within 2x of
 * glibc's within a second", issue 14). A sized free is used for a quarter of the blocks when
 * the C library has free_sized (-DUSE_FREE_SIZED). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#ifndef MIB
#define MIB 2048
#endif
#ifndef SECS
#define SECS 1
#endif

#ifdef USE_FREE_SIZED
void free_sized(void *, size_t);
#endif

static long rss_kib(void) {
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long k = -1;
    if (!f) return -1;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "VmRSS: %ld kB", &k) == 1) break;
    fclose(f);
    return k;
}

static unsigned long long rng = 88172645463325252ULL;
static unsigned long long next(void) {
    rng ^= rng << 13; rng ^= rng >> 7; rng ^= rng << 17;
    return rng;
}

int main(int argc, char **argv) {
    int lifo = argc > 1 && strcmp(argv[1], "lifo") == 0;
    int big = argc > 1 && strcmp(argv[1], "big") == 0;
    size_t target = (size_t)MIB << 20, total = 0, n = 0, cap = 1 << 20;
    void **p = malloc(cap * sizeof *p);
    size_t *sz = malloc(cap * sizeof *sz);
    while (total < target) {
        if (n == cap) {
            cap *= 2;
            p = realloc(p, cap * sizeof *p);
            sz = realloc(sz, cap * sizeof *sz);
        }
        unsigned long long r = next();
        /* 90% small (16..1024 B), 10% buffers (1..64 KiB). */
        size_t s = big ? (128 << 10) + (r >> 8) % (896 << 10)
                 : (r % 10) ? 16 + (r >> 8) % 1009 : 1024 + (r >> 8) % (63 << 10);
        p[n] = malloc(s);
        if (!p[n]) { perror("malloc"); return 1; }
        memset(p[n], (int)n, s);
        sz[n] = s;
        total += s;
        n++;
    }
    printf("blocks %zu\n", n);
    printf("peak %ld\n", rss_kib());
    for (size_t i = n - 1; !lifo && i > 0; i--) {
        size_t j = next() % (i + 1);
        void *t = p[i]; p[i] = p[j]; p[j] = t;
        size_t u = sz[i]; sz[i] = sz[j]; sz[j] = u;
    }
    for (size_t k = 0; k < n; k++) {
        size_t i = lifo ? n - 1 - k : k;
#ifdef USE_FREE_SIZED
        if (i % 4 == 0) { free_sized(p[i], sz[i]); continue; }
#endif
        free(p[i]);
    }
    printf("freed %ld\n", rss_kib());
    for (int t = 250; t <= SECS * 1000; t += 250) {
        struct timespec ts = {0, 250 * 1000000L};
        nanosleep(&ts, NULL);
        printf("t=%d %ld\n", t, rss_kib());
    }
    free(p);
    free(sz);
    return 0;
}
