/* Grows a heap to TARGET MiB (argv[1], default 8192) in steps of STEP MiB (argv[2], default
 * 1024), writing every block, then frees it back step by step, last step first, and prints
 * the resident size (VmRSS, KiB) and the time after every step: "grow MIB K MS" and
 * "shrink MIB K MS"; after each shrink step it waits WAIT ms (argv[3], default 500) so that
 * an allocator returning memory on a timer can, and prints "idle MIB K MS" again. With a
 * fourth argument "stdin" it then frees its own arrays, calls malloc_trim(0) (a program's
 * way to give everything back now, whatever the timers), prints "wait", reads standard
 * input to its end (the caller decides when the allocator's state is what it expects) and
 * prints "final 0 K MS".
 * Blocks are 90% 64 KiB..1 MiB (page-allocator blocks) and 10% 16 B..4 KiB (slab objects), so
 * nothing is served by a private mmap: every byte is the allocator's own heap.
 * Issue 19's done-when ("libkmem_malloc.so runs a program that grows to 8 GiB and shrinks
 * back on one machine, with RSS following"); numbers in docs/BENCHMARKS.md. */
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

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

static long now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

static unsigned long long rng = 88172645463325252ULL;
static unsigned long long next(void) {
    rng ^= rng << 13; rng ^= rng >> 7; rng ^= rng << 17;
    return rng;
}

int main(int argc, char **argv) {
    size_t target = (size_t)(argc > 1 ? atol(argv[1]) : 8192) << 20;
    size_t step = (size_t)(argc > 2 ? atol(argv[2]) : 1024) << 20;
    long wait = argc > 3 ? atol(argv[3]) : 500;
    size_t nsteps = (target + step - 1) / step;
    size_t cap = 1 << 16, n = 0, total = 0;
    void **p = malloc(cap * sizeof *p);
    size_t *start = calloc(nsteps + 1, sizeof *start);
    long t0 = now_ms();
    if (!p || !start) return 1;
    for (size_t s = 0; s < nsteps; s++) {
        start[s] = n;
        size_t goal = (s + 1) * step < target ? (s + 1) * step : target;
        while (total < goal) {
            if (n == cap) {
                cap *= 2;
                p = realloc(p, cap * sizeof *p);
                if (!p) { perror("realloc"); return 1; }
            }
            unsigned long long r = next();
            size_t sz = (r % 10) ? (64 << 10) + (r >> 8) % (960 << 10) : 16 + (r >> 8) % 4080;
            p[n] = malloc(sz);
            if (!p[n]) { fprintf(stderr, "malloc(%zu) failed at %zu MiB\n", sz, total >> 20); return 1; }
            memset(p[n], (int)n, sz);
            total += sz;
            n++;
        }
        printf("grow %zu %ld %ld\n", total >> 20, rss_kib(), now_ms() - t0);
        fflush(stdout);
    }
    start[nsteps] = n;
    for (size_t s = nsteps; s-- > 0;) {
        for (size_t i = start[s]; i < start[s + 1]; i++) {
            /* Check a byte: the data survived the growth. */
            if (*(unsigned char *)p[i] != (unsigned char)i) { fprintf(stderr, "block %zu corrupted\n", i); return 1; }
            free(p[i]);
        }
        size_t left = 0;
        for (size_t k = 0; k < s; k++) left += step;
        printf("shrink %zu %ld %ld\n", left >> 20, rss_kib(), now_ms() - t0);
        fflush(stdout);
        struct timespec ts = { wait / 1000, (wait % 1000) * 1000000L };
        nanosleep(&ts, NULL);
        printf("idle %zu %ld %ld\n", left >> 20, rss_kib(), now_ms() - t0);
        fflush(stdout);
    }
    free(p);
    free(start);
    if (argc > 4 && strcmp(argv[4], "stdin") == 0) {
        malloc_trim(0);
        puts("wait");
        fflush(stdout);
        char c;
        /* read(2), not stdio: stdin's buffer would be one more heap block, allocated
         * after the growth. */
        while (read(0, &c, 1) > 0)
            ;
        printf("final 0 %ld %ld\n", rss_kib(), now_ms() - t0);
    }
    return 0;
}
