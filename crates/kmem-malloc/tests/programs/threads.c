/* Threads that come and go while allocating, and free each other's blocks; then fork.
 * Prints a deterministic summary, compared between glibc and kmem-malloc. */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#ifndef ROUNDS
#define ROUNDS 6
#endif
#define THREADS 8
#ifndef PER_THREAD
#define PER_THREAD 20000
#endif
#define SLOTS 4096

static void *slots[SLOTS];
static size_t slot_len[SLOTS];
static pthread_mutex_t slot_lock = PTHREAD_MUTEX_INITIALIZER;

static uint64_t next(uint64_t *s) {
    *s ^= *s << 13; *s ^= *s >> 7; *s ^= *s << 17;
    return *s;
}

static int check(const unsigned char *p, size_t n) {
    unsigned char v = (unsigned char)n;
    for (size_t i = 0; i < n; i++) if (p[i] != v) return 0;
    return 1;
}

struct arg { int id; uint64_t seed; long bad; uint64_t sum; };

static void *worker(void *a_) {
    struct arg *a = a_;
    uint64_t s = a->seed;
    void *mine[64] = {0};
    size_t mine_len[64] = {0};
    for (int i = 0; i < PER_THREAD; i++) {
        uint64_t r = next(&s);
        size_t n = (r % 7 == 0) ? (r >> 8) % 100000 : (r >> 8) % 600 + 1;
        int k = r % 64;
        if (mine[k]) {
            if (!check(mine[k], mine_len[k])) a->bad++;
            free(mine[k]);
        }
        unsigned char *p = (r % 5 == 0) ? calloc(1, n) : malloc(n);
        if (!p) { a->bad++; continue; }
        if (r % 5 == 0) for (size_t j = 0; j < n; j++) if (p[j]) { a->bad++; break; }
        memset(p, (unsigned char)n, n);
        if (r % 11 == 0) {
            size_t m = n + (r >> 20) % 5000;
            unsigned char *q = realloc(p, m);
            if (!q) { a->bad++; continue; }
            if (!check(q, n)) a->bad++;
            memset(q, (unsigned char)m, m);
            p = q; n = m;
        }
        mine[k] = p; mine_len[k] = n;
        a->sum += n;
        /* Hand some blocks to other threads through the shared slots. */
        if (r % 3 == 0) {
            int j = (r >> 16) % SLOTS;
            pthread_mutex_lock(&slot_lock);
            void *old = slots[j]; size_t ol = slot_len[j];
            slots[j] = mine[k]; slot_len[j] = mine_len[k];
            mine[k] = 0;
            pthread_mutex_unlock(&slot_lock);
            if (old) { if (!check(old, ol)) a->bad++; free(old); }
        }
    }
    for (int k = 0; k < 64; k++) if (mine[k]) { if (!check(mine[k], mine_len[k])) a->bad++; free(mine[k]); }
    return NULL;
}

int main(void) {
    long bad = 0;
    uint64_t sum = 0;
    for (int round = 0; round < ROUNDS; round++) {
        pthread_t t[THREADS];
        struct arg a[THREADS];
        for (int i = 0; i < THREADS; i++) {
            a[i] = (struct arg){ i, 0x9e3779b97f4a7c15ull * (round * THREADS + i + 1), 0, 0 };
            pthread_create(&t[i], NULL, worker, &a[i]);
        }
        for (int i = 0; i < THREADS; i++) { pthread_join(t[i], NULL); bad += a[i].bad; sum += a[i].sum; }
        /* A fork in the middle: the child allocates and checks the parent's blocks. */
        pid_t pid = fork();
        if (pid == 0) {
            long cbad = 0;
            for (int j = 0; j < SLOTS; j++) if (slots[j] && !check(slots[j], slot_len[j])) cbad++;
            for (int j = 0; j < 1000; j++) { char *p = malloc(j * 7 + 1); memset(p, 1, j * 7 + 1); free(p); }
            for (int j = 0; j < SLOTS; j += 2) { free(slots[j]); slots[j] = malloc(33); memset(slots[j], 0x77, 33); }
            _exit(cbad ? 1 : 0);
        }
        int st = 0;
        waitpid(pid, &st, 0);
        if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) bad++;
        /* The child's frees and writes must not have touched the parent's heap. */
        for (int j = 0; j < SLOTS; j++) if (slots[j] && !check(slots[j], slot_len[j])) bad++;
    }
    for (int j = 0; j < SLOTS; j++) free(slots[j]);
    printf("rounds %d threads %d bytes %llu bad %ld\n", ROUNDS, THREADS, (unsigned long long)sum, bad);
    return bad != 0;
}
