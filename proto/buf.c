/*
 * buf.c: the growable byte buffer behind every encoder.
 *
 * Capacity doubles (starting at 64 bytes) so appends are amortised O(1).
 * Every function that can fail leaves the buffer as it was, so a caller
 * can give up at any point and still free it. A buffer marked secret
 * (CBUF_SECRET: plaintext of encrypted data) is never realloc'd, and is
 * wiped when it moves and when it is freed.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"

/* Zeroes n bytes in a way the compiler does not drop. */
static void
wipe(void *p, size_t n)
{
	volatile uint8_t *v = p;
	while (n-- > 0)
		*v++ = 0;
}

int
cbuf_reserve(cbuf *b, size_t extra)
{
	size_t need, cap;
	uint8_t *p;

	if (extra > SIZE_MAX - b->len)
		return -1;
	need = b->len + extra;
	if (need <= b->cap)
		return 0;
	cap = b->cap ? b->cap : 64;
	while (cap < need) {
		if (cap > SIZE_MAX / 2) {
			cap = need;
			break;
		}
		cap *= 2;
	}
	if (b->secret) {
		/* never realloc: the memory left behind would keep it */
		if ((p = malloc(cap)) == NULL)
			return -1;
		if (b->p != NULL) {
			memcpy(p, b->p, b->len);
			wipe(b->p, b->cap);
			free(b->p);
		}
	} else if ((p = realloc(b->p, cap)) == NULL) {
		return -1;
	}
	b->p = p;
	b->cap = cap;
	return 0;
}

int
cbuf_put(cbuf *b, const void *data, size_t n)
{
	if (n == 0)
		return 0;
	if (cbuf_reserve(b, n) == -1)
		return -1;
	memcpy(b->p + b->len, data, n);
	b->len += n;
	return 0;
}

int
cbuf_putc(cbuf *b, uint8_t c)
{
	return cbuf_put(b, &c, 1);
}

int
cbuf_puts(cbuf *b, const char *s)
{
	return cbuf_put(b, s, strlen(s));
}

int
cbuf_terminate(cbuf *b)
{
	if (cbuf_reserve(b, 1) == -1)
		return -1;
	b->p[b->len] = '\0';
	return 0;
}

void
cbuf_reset(cbuf *b)
{
	b->len = 0;
}

void
cbuf_free(cbuf *b)
{
	if (b->secret && b->p != NULL)
		wipe(b->p, b->cap);
	free(b->p);
	b->p = NULL;
	b->len = 0;
	b->cap = 0;
}
