/* fork while other threads are inside malloc/free: the fork handlers must wait until no
 * thread is in the allocator (libkmem_malloc's per-thread slots and membarrier), so every
 * child finds a consistent heap: it allocates, frees and checks blocks, and exits. A child
 * forked with a thread half way through the allocator would find a held lock (it hangs) or
 * a broken free list (it crashes or sees a block handed out twice). */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define THREADS 3
#define FORKS 150
#define LIVE 256

static volatile int stop;

static void *worker(void *arg) {
    uint64_t r = (uintptr_t)arg * 0x9e3779b97f4a7c15ull + 1;
    unsigned char *live[LIVE] = {0};
    size_t len[LIVE] = {0};
    while (!stop) {
        r ^= r << 13; r ^= r >> 7; r ^= r << 17;
        int k = r % LIVE;
        if (live[k]) {
            for (size_t i = 0; i < len[k]; i++)
                if (live[k][i] != (unsigned char)k) abort();
            free(live[k]);
        }
        len[k] = (r >> 8) % 16 == 0 ? 4096 + (r >> 20) % 200000 : 1 + (r >> 20) % 700;
        live[k] = malloc(len[k]);
        if (!live[k]) abort();
        memset(live[k], k, len[k]);
    }
    for (int k = 0; k < LIVE; k++) free(live[k]);
    return NULL;
}

int main(void) {
    pthread_t t[THREADS];
    for (long i = 0; i < THREADS; i++) pthread_create(&t[i], NULL, worker, (void *)(i + 1));
    long bad = 0;
    for (int f = 0; f < FORKS; f++) {
        pid_t pid = fork();
        if (pid == 0) {
            /* Only this thread exists here; the heap must be whole. */
            static void *p[512];
            for (int round = 0; round < 4; round++) {
                for (int j = 0; j < 512; j++) {
                    size_t n = j % 8 == 0 ? 4096 + j * 500 : 8 + (j % 64) * 24;
                    p[j] = malloc(n);
                    if (!p[j]) _exit(3);
                    memset(p[j], j, n);
                }
                for (int j = 0; j < 512; j++) {
                    size_t n = j % 8 == 0 ? 4096 + j * 500 : 8 + (j % 64) * 24;
                    unsigned char *b = p[j];
                    for (size_t i = 0; i < n; i++) if (b[i] != (unsigned char)j) _exit(2);
                    free(p[j]);
                }
            }
            _exit(0);
        }
        int st = 0;
        if (pid < 0 || waitpid(pid, &st, 0) != pid || !WIFEXITED(st) || WEXITSTATUS(st) != 0) bad++;
    }
    stop = 1;
    for (int i = 0; i < THREADS; i++) pthread_join(t[i], NULL);
    printf("forks %d bad %ld\n", FORKS, bad);
    return bad != 0;
}
