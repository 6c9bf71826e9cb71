/* A program that leaks for KMEM_MALLOC_KMEMLEAK=1: one block lost, blocks still reachable
 * from a global, from the stack and through a chain, and a block freed. With an argument
 * "signal", it also raises SIGUSR2 and allocates once more (the report comes then). */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct node { struct node *next; char pad[40]; };

static struct node *global_list;  /* bss: a root */
static char *global_buf;

/* Where the lost block's pointer is kept for a moment, so the compiler cannot elide the
 * allocation. */
static char *volatile sink;

static void __attribute__((noinline)) lose(void)
{
	char *p = malloc(100);
	memset(p, 'L', 100);  /* "LLLL...": easy to find in the hex dump */
	sink = p;
	sink = NULL;          /* the only pointer is gone */
}

/* Overwrites the dead stack below main's frame, where lose()'s frame was: a conservative
 * scan of the stack would otherwise find the stale pointer there (as any leak checker
 * that scans stacks can). */
static void __attribute__((noinline)) scrub(void)
{
	volatile char buf[8192];
	for (size_t i = 0; i < sizeof(buf); i++)
		buf[i] = 0;
}

int main(int argc, char **argv)
{
	for (int i = 0; i < 3; i++) {
		struct node *n = malloc(sizeof(*n));
		memset(n, 0, sizeof(*n));
		n->next = global_list;
		global_list = n;   /* reachable through the chain */
	}
	global_buf = malloc(300);
	memset(global_buf, 'G', 300);
	char *freed = malloc(64);
	free(freed);
	lose();
	scrub();
	if (argc > 1 && strcmp(argv[1], "signal") == 0) {
		raise(SIGUSR2);
		free(malloc(8));  /* the report is made at this call */
	}
	printf("done\n");
	fflush(stdout);
	return 0;
}
