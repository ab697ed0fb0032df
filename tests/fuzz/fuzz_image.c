// SPDX-License-Identifier: MIT
/*
 * fuzz_image.c - libFuzzer target for the checkpoint image parser (cr/image.c).
 *
 * Input: one byte selecting the file kind (enum cr_file_kind, taken modulo 5, plus 1), then the
 * bytes of that file. Decodes it into a fresh image and, if it parses, runs the cross-record
 * validation on it. Any crash, sanitizer report or leak is a bug; every outcome is 0 or -errno.
 */
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "common/log.h"
#include "cr/image.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int cr_image_check_alone(struct cr_task *t);

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

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	enum cr_file_kind kind = (enum cr_file_kind)(data[0] % 5 + 1);
	struct cr_image *img = cr_image_new();
	if (!img)
		return 0;
	struct cr_task *t = cr_image_add_task(img, 1);
	if (!t) {
		cr_image_free(img);
		return 0;
	}
	log_set_level(LOG_ERR);
	int ret = cr_image_decode(img, kind == CR_FILE_INVENTORY ? NULL : t, kind, data + 1,
				  size - 1, "fuzz");
	if (ret == 0 && kind != CR_FILE_INVENTORY && kind != CR_FILE_PAGEMAP)
		ret = cr_image_check_alone(t);
	if (ret > 0 || (ret < 0 && ret != -EBADMSG && ret != -EOPNOTSUPP && ret != -ENOMEM))
		abort(); /* the parser's contract: 0, -EBADMSG, -EOPNOTSUPP or -ENOMEM */
	cr_image_free(img);
	return 0;
}
