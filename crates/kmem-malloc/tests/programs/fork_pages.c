/* fork and the struct pages: a child and its parent must not share the allocator's state.
 *
 * The buddy allocator's free lists run through struct page (its lru links), and every
 * allocation and free rewrites the struct pages of its block. Each process must have its own
 * copy of them, as of the rest of the heap. Here parent and children allocate and free large
 * blocks (the buddy allocator's) and small ones (slab pages), concurrently and one after the
 * other, in nested forks, and check that no block is handed out twice: each live block keeps
 * its own pattern. Prints "bad 0" when all is well. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define SLOTS 192

static char *slot[SLOTS];
static size_t len[SLOTS];
static unsigned char tag[SLOTS];

static uint64_t rng = 0x9e3779b97f4a7c15ull;
static uint64_t next(void) { rng ^= rng << 13; rng ^= rng >> 7; rng ^= rng << 17; return rng; }

static size_t pick(void) {
    /* Half small (slab pages), half large: 16 KiB to 1 MiB, from the buddy allocator. */
    if (next() & 1) return 16 + next() % 2000;
    return (size_t)16384 << (next() % 7);
}

static long check_all(void) {
    long bad = 0;
    for (int i = 0; i < SLOTS; i++) {
        if (!slot[i]) continue;
        for (size_t k = 0; k < len[i]; k += 509)
            if ((unsigned char)slot[i][k] != tag[i]) { bad++; break; }
        if ((unsigned char)slot[i][len[i] - 1] != tag[i]) bad++;
    }
    return bad;
}

/* Replaces `n` random slots, freeing their blocks and allocating new ones. */
static long churn(int n, unsigned char who) {
    for (int j = 0; j < n; j++) {
        int i = next() % SLOTS;
        free(slot[i]);
        len[i] = pick();
        slot[i] = malloc(len[i]);
        if (!slot[i]) return 1;
        tag[i] = (unsigned char)(who + j);
        memset(slot[i], tag[i], len[i]);
    }
    return check_all();
}

static long child(int depth, unsigned char who) {
    long bad = check_all() + churn(400, who);
    if (depth > 0) {
        pid_t pid = fork();
        if (pid == 0) _exit(child(depth - 1, who + 50) ? 1 : 0);
        bad += churn(400, who + 1);
        int st = 0;
        if (waitpid(pid, &st, 0) != pid || !WIFEXITED(st) || WEXITSTATUS(st) != 0) bad++;
        bad += churn(200, who + 2);
    }
    return bad;
}

int main(void) {
    long bad = churn(SLOTS * 2, 1);
    for (int round = 0; round < 6; round++) {
        pid_t pid = fork();
        if (pid < 0) { perror("fork"); return 2; }
        if (pid == 0) {
            rng += 77 + round;
            _exit(child(round % 3, (unsigned char)(100 + round)) ? 1 : 0);
        }
        /* Odd rounds: the parent works while the child does; even rounds: after it exited. */
        if (round & 1) bad += churn(400, (unsigned char)(10 + round));
        int st = 0;
        if (waitpid(pid, &st, 0) != pid || !WIFEXITED(st) || WEXITSTATUS(st) != 0) {
            printf("round %d: child failed (status %#x)\n", round, st);
            bad++;
        }
        bad += churn(400, (unsigned char)(20 + round));
    }
    for (int i = 0; i < SLOTS; i++) free(slot[i]);
    printf("bad %ld\n", bad);
    return bad != 0;
}
