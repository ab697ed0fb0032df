// SPDX-License-Identifier: MIT
/*
 * wl_zeros - 32 MiB of private anonymous memory written with zeros (populated, resident, as a
 * pre-touched or cleared heap is), between two pages of data. After SIGTERM it prints
 * "ZERO_RESIDENT <pages>" - how many pages of the zero region are resident; what is right
 * depends on where the image came from, so the harness judges that - then checks that the
 * region reads zeros and the data pages are intact.
 */
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>

#include "wl_common.h"

#define PG     4096u
#define ZPAGES 8192u

int main(void)
{
	static unsigned char vec[ZPAGES];
	size_t len = (ZPAGES + 2) * (size_t)PG, resident = 0;
	uint8_t *m = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	if (m == MAP_FAILED || wl_catch_sigterm(0) < 0)
		return 1;
	wl_fill(m, PG, 1);
	memset(m + PG, 0, (size_t)ZPAGES * PG); /* every page written: populated zeros */
	wl_fill(m + (ZPAGES + 1) * (size_t)PG, PG, 2);
	wl_ready();
	wl_wait_sigterm();

	/* Residency before reading: reading a missing page would map the zero page. */
	if (mincore(m + PG, (size_t)ZPAGES * PG, vec) < 0)
		wl_fail("mincore of the zero region failed");
	for (size_t i = 0; i < ZPAGES; i++)
		resident += vec[i] & 1;
	wl_say("ZERO_RESIDENT %zu", resident);
	if (!wl_all_zero(m + PG, (size_t)ZPAGES * PG))
		wl_fail("the zero region does not read as zeros");
	if (wl_find_mismatch(m, PG, 1) >= 0 ||
	    wl_find_mismatch(m + (ZPAGES + 1) * (size_t)PG, PG, 2) >= 0)
		wl_fail("a data page around the zero region changed");
	return wl_finish();
}
