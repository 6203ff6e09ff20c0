/* burn: the paper's CPU-bound test process. It spins for UNITS work
 * units; one unit is about 1 ms of CPU on a 2 GHz core (scale with
 * BURN_UNIT_LOOPS). It prints the units and the CPU seconds it used. */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

int main(int argc, char **argv) {
	if (argc != 2) {
		fprintf(stderr, "usage: burn UNITS\n");
		return 2;
	}
	long units = atol(argv[1]);
	const char *s = getenv("BURN_UNIT_LOOPS");
	long loops = s ? atol(s) : 400000;
	volatile unsigned long x = 1;
	for (long u = 0; u < units; u++)
		for (long i = 0; i < loops; i++)
			x = x * 6364136223846793005UL + 1442695040888963407UL;
	printf("%ld units in %.3f s of CPU\n", units, (double)clock() / CLOCKS_PER_SEC);
	return 0;
}
