// SPDX-License-Identifier: MIT
/*
 * fuzz_image.c - libFuzzer target for the checkpoint image parser (cr/image.c).
 *
 * Input: one selector byte, then the bytes of one file. The selector taken modulo 6 picks the
 * parser: 0..4 are the .img file kinds (enum cr_file_kind minus 1: inventory, core, mm,
 * pagemap, fds), 5 is a task's pages.sums (cr_sums_decode). An .img file is decoded into a
 * fresh image and, if it parses, the cross-record validation runs on it. Any crash, sanitizer
 * report or leak is a bug; every outcome is 0 or -errno.
 */
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "common/log.h"
#include "cr/image.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int cr_image_check_alone(struct cr_task *t);
int fuzz_image_parse(const uint8_t *data, size_t size, const char *name);

#define SEL_SUMS 5 /* selector value (modulo 6) of pages.sums */

/* Validates a task decoded from a single file: the fields other files would supply get
 * harmless values first, so only what this file said is judged. Page runs need the VMAs of
 * mm.img, so a lone pagemap.img is only decoded. */
int cr_image_check_alone(struct cr_task *t)
{
	if (!t->xstate_len)
		t->xstate_len = 576; /* never dereferenced by validation */
	if (!t->comm[0])
		t->comm[0] = 'x';
	int ret = cr_image_validate_task(t, t->pages_total * CR_PAGE_SIZE);
	if (t->xstate == NULL)
		t->xstate_len = 0;
	return ret;
}

/* Runs the parser the selector byte picks; returns its result (0 when the input parses). */
int fuzz_image_parse(const uint8_t *data, size_t size, const char *name)
{
	if (size < 1)
		return -EBADMSG;
	unsigned int sel = data[0] % 6;
	if (sel == SEL_SUMS) {
		uint64_t nr;
		const uint8_t *digests;
		int ret = cr_sums_decode(data + 1, size - 1, name, &nr, &digests);
		/* On success every digest the header counts must lie inside the input. */
		if (ret == 0 && (nr > (size - 1) / CR_SUMS_DIGEST_LEN ||
				 digests + nr * CR_SUMS_DIGEST_LEN != data + size))
			abort();
		return ret;
	}
	enum cr_file_kind kind = (enum cr_file_kind)(sel + 1);
	struct cr_image *img = cr_image_new();
	if (!img)
		return -ENOMEM;
	struct cr_task *t = cr_image_add_task(img, 1);
	if (!t) {
		cr_image_free(img);
		return -ENOMEM;
	}
	int ret = cr_image_decode(img, kind == CR_FILE_INVENTORY ? NULL : t, kind, data + 1,
				  size - 1, name);
	if (ret == 0 && kind != CR_FILE_INVENTORY && kind != CR_FILE_PAGEMAP)
		ret = cr_image_check_alone(t);
	cr_image_free(img);
	return ret;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	log_set_level(LOG_ERR);
	int ret = fuzz_image_parse(data, size, "fuzz");
	if (ret > 0 || (ret < 0 && ret != -EBADMSG && ret != -EOPNOTSUPP && ret != -ENOMEM))
		abort(); /* the parser's contract: 0, -EBADMSG, -EOPNOTSUPP or -ENOMEM */
	return 0;
}
