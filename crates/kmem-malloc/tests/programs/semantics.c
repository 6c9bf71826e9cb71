/* glibc's malloc API semantics: prints one line per check (compared with glibc's run). */
#include <errno.h>
#include <malloc.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#pragma GCC diagnostic ignored "-Walloc-size-larger-than="
#define CHECK(name, cond) printf("%-40s %s\n", name, (cond) ? "ok" : "FAIL")

int main(void) {
    void *p, *q;
    p = malloc(0); CHECK("malloc(0) non-NULL", p != NULL);
    q = malloc(0); CHECK("malloc(0) unique", q != p);
    free(p); free(q); free(NULL);
    for (size_t n = 1; n <= 70000; n = n * 3 + 1) {
        p = malloc(n);
        char buf[64]; snprintf(buf, sizeof buf, "malloc(%zu) 16-aligned, usable>=n", n);
        CHECK(buf, p && ((uintptr_t)p % 16 == 0) && malloc_usable_size(p) >= n);
        free(p);
    }
    CHECK("malloc_usable_size(NULL)==0", malloc_usable_size(NULL) == 0);
    errno = 0; p = malloc(SIZE_MAX / 2); CHECK("malloc(huge) NULL ENOMEM", !p && errno == ENOMEM);
    errno = 0; p = calloc(SIZE_MAX / 2, 4); CHECK("calloc overflow NULL ENOMEM", !p && errno == ENOMEM);
    p = calloc(1000, 10); int z = 1; for (int i = 0; i < 10000; i++) if (((char *)p)[i]) z = 0;
    CHECK("calloc zeroed", p && z); free(p);
    p = calloc(1, 10 << 20); z = 1; for (int i = 0; i < (10 << 20); i += 4096) if (((char *)p)[i]) z = 0;
    CHECK("calloc(10 MiB) zeroed", p && z); free(p);
    p = malloc(100); memset(p, 0x5a, 100);
    q = realloc(p, 100000); z = 1; for (int i = 0; i < 100; i++) if (((unsigned char *)q)[i] != 0x5a) z = 0;
    CHECK("realloc grow keeps data", q && z);
    p = realloc(q, 10); CHECK("realloc shrink keeps data", p && ((unsigned char *)p)[9] == 0x5a);
    q = realloc(p, 0); CHECK("realloc(p, 0) frees, NULL", q == NULL);
    p = realloc(NULL, 50); CHECK("realloc(NULL) mallocs", p != NULL); free(p);
    p = malloc(8 << 20); memset(p, 3, 8 << 20);
    q = realloc(p, 40 << 20); CHECK("realloc huge grow keeps data", q && ((char *)q)[(8 << 20) - 1] == 3);
    free(q);
    errno = 0; p = reallocarray(NULL, SIZE_MAX / 2, 3); CHECK("reallocarray overflow ENOMEM", !p && errno == ENOMEM);
    p = reallocarray(NULL, 10, 10); CHECK("reallocarray ok", p != NULL); free(p);
    for (size_t a = 1; a <= (8 << 20); a <<= 1) {
        char buf[64];
        snprintf(buf, sizeof buf, "posix_memalign(%zu)", a);
        int r = posix_memalign(&p, a, 100);
        if (a < sizeof(void *)) { CHECK(buf, r == EINVAL); continue; }
        CHECK(buf, r == 0 && (uintptr_t)p % a == 0 && malloc_usable_size(p) >= 100);
        free(p);
        snprintf(buf, sizeof buf, "aligned_alloc(%zu)", a);
        p = aligned_alloc(a, 3 * a); CHECK(buf, p && (uintptr_t)p % a == 0); free(p);
        snprintf(buf, sizeof buf, "memalign(%zu)", a);
        p = memalign(a, 5000); CHECK(buf, p && (uintptr_t)p % a == 0); free(p);
    }
    errno = 0; CHECK("posix_memalign(24) EINVAL", posix_memalign(&p, 24, 10) == EINVAL && errno == 0);
    errno = 0; p = aligned_alloc(24, 48);
    /* glibc 2.38 rejects it; earlier versions round the alignment up. */
    CHECK("aligned_alloc(24) EINVAL or 32-aligned", (!p && errno == EINVAL) || (p && (uintptr_t)p % 32 == 0));
    free(p);
    p = memalign(24, 48); CHECK("memalign(24) rounds up to 32", p && (uintptr_t)p % 32 == 0); free(p);
    long pg = sysconf(_SC_PAGESIZE);
    p = valloc(10); CHECK("valloc page-aligned", p && (uintptr_t)p % pg == 0); free(p);
    p = pvalloc(10); CHECK("pvalloc page-aligned, a page", p && (uintptr_t)p % pg == 0 && malloc_usable_size(p) >= (size_t)pg); free(p);
    p = pvalloc(0); CHECK("pvalloc(0) page-aligned", p && (uintptr_t)p % pg == 0); free(p);
    errno = 0; CHECK("posix_memalign(huge) ENOMEM", posix_memalign(&p, 64, SIZE_MAX / 2) == ENOMEM);
    return 0;
}
