/*
 * buf.h: a growable byte buffer, the one output type of the encoders.
 * Functions return 0 on success and -1 when memory runs out (the buffer is
 * then left as it was).
 */
#ifndef CIM_PROTO_BUF_H
#define CIM_PROTO_BUF_H

#include <stddef.h>
#include <stdint.h>

typedef struct cbuf {
	uint8_t *p;
	size_t len;
	size_t cap;
	int secret; /* it holds a secret: wiped when it grows (the old memory)
		       and when it is freed */
} cbuf;

#define CBUF_INIT {NULL, 0, 0, 0}
#define CBUF_SECRET {NULL, 0, 0, 1}

int cbuf_reserve(cbuf *b, size_t extra);
int cbuf_put(cbuf *b, const void *data, size_t n);
int cbuf_putc(cbuf *b, uint8_t c);
int cbuf_puts(cbuf *b, const char *s);
/* Appends a NUL without counting it, so b->p can be read as a string. */
int cbuf_terminate(cbuf *b);
void cbuf_reset(cbuf *b);
void cbuf_free(cbuf *b);

#endif
