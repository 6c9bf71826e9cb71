/* Three planted bugs for the memory debuggers (docs/BENCHMARKS.md, issue 17), after some
 * allocation work (so that each tool's slowdown shows): a lost block (a leak), a branch on
 * uninitialised heap memory, and a one-byte write past a 64-byte block (repeated 300 times,
 * 1.5 ms apart, so that KFENCE with KMEM_MALLOC_KFENCE=1 samples one of them). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char *volatile sink;

static void __attribute__((noinline)) leak(void)
{
	char *p = malloc(100);
	memset(p, 'L', 100);
	sink = p;
	sink = NULL;
}

static int __attribute__((noinline)) uninit(void)
{
	int *u = malloc(64);
	int r = u[3] == 42;  /* never written */
	free(u);
	return r;
}

static void __attribute__((noinline)) overflow(void)
{
	char *b = malloc(64);
	((volatile char *)b)[64] = 1;  /* one byte past the block */
	sink = b;
	free(b);
}

int main(void)
{
	unsigned long sum = 0;
	for (int i = 0; i < 200000; i++) {
		size_t n = 16 + (i * 7919) % 2000;
		char *p = malloc(n);
		memset(p, i, n);
		sum += (unsigned char)p[n / 2];
		free(p);
	}
	leak();
	printf("uninit %d\n", uninit());
	/* KFENCE samples one allocation once its interval has passed and its per-CPU countdown
	 * (64 allocations) has run out: repeat the overflow, pausing past the interval. */
	for (int i = 0; i < 300; i++) {
		usleep(1500);
		overflow();
	}
	printf("sum %lu\n", sum);
	return 0;
}
