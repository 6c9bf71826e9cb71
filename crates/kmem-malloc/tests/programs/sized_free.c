/* The sized frees of libkmem_malloc.so (issue 14): free_sized, free_aligned_sized (C23) and
 * sdallocx (jemalloc), looked up at run time (glibc before 2.43 has no free_sized). Blocks of
 * every size class, large kmalloc blocks, host-mapped blocks, aligned blocks, NULL, and
 * blocks that realloc kept in place in another size class (the size passed is the last
 * requested one, as C23 says). Prints "missing" without the entry points, else "ok N". */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef void (*free_sized_t)(void *, size_t);
typedef void (*free_aligned_sized_t)(void *, size_t, size_t);
typedef void (*sdallocx_t)(void *, size_t, int);

int main(void) {
    free_sized_t fs = (free_sized_t)dlsym(RTLD_DEFAULT, "free_sized");
    free_aligned_sized_t fas = (free_aligned_sized_t)dlsym(RTLD_DEFAULT, "free_aligned_sized");
    sdallocx_t sd = (sdallocx_t)dlsym(RTLD_DEFAULT, "sdallocx");
    if (!fs || !fas || !sd) {
        printf("missing\n");
        return 0;
    }
    size_t n = 0;
    for (int round = 0; round < 3; round++) {
        for (size_t s = 0; s <= (8 << 20); s = s < 64 ? s + 1 : s + s / 7) {
            char *p = malloc(s);
            if (!p) return 1;
            memset(p, 0x5a, s);
            if (n % 3 == 0) fs(p, s);
            else if (n % 3 == 1) sd(p, s, 0);
            else fs(p, s);
            n++;
        }
        for (size_t a = 16; a <= (1 << 16); a *= 2) {
            for (size_t s = a; s <= 4 * a; s += a) {
                char *p = aligned_alloc(a, s);
                if (!p || ((size_t)p & (a - 1))) return 2;
                memset(p, 1, s);
                if (n % 2) fas(p, a, s);
                else sd(p, s, __builtin_ctzl(a)); /* MALLOCX_LG_ALIGN */
                n++;
            }
        }
        /* realloc keeps blocks in place across size classes: the last size counts. */
        for (size_t s = 100; s < 5000; s += 37) {
            char *p = malloc(s);
            char *q = realloc(p, s / 2 + 1);
            if (!q) return 3;
            fs(q, s / 2 + 1);
            n++;
        }
        fs(NULL, 10);
        fas(NULL, 64, 10);
    }
    printf("ok %zu\n", n);
    return 0;
}
