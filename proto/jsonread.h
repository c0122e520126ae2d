/*
 * jsonread.h: JSON text into jansson values, every valid JSON text
 * included, with refusals said in words about the text.
 *
 * jansson reads U+0000 (\u0000) in strings when asked (JSON_ALLOW_NUL)
 * but refuses it in object keys, and its messages name its own flags.
 * cim_json_read takes both, so a string or key holding U+0000 comes back
 * with its full length (json_string_length, json_object_keylen_foreach);
 * every other rule is jansson's: UTF-8 only, no lone surrogates, no
 * duplicate keys, integers within 64 bits.
 *
 * Keys holding U+0000 need the jansson calls that take lengths: note that
 * jansson 2.14's json_equal and json_deep_copy cut such keys at the NUL.
 */
#ifndef CIM_PROTO_JSONREAD_H
#define CIM_PROTO_JSONREAD_H

#include <jansson.h>
#include <stddef.h>

/* Parses len bytes of text as json_loadb(text, len, flags | JSON_ALLOW_NUL
 * | JSON_REJECT_DUPLICATES, err) would (flags: JSON_DECODE_ANY for a root
 * that is not an object or array), keys holding U+0000 included. Returns
 * a new reference, or NULL with err filled: err->text one sentence without
 * a position (err->line, err->column and err->position say where, in
 * text), json_error_code(err) jansson's code. */
json_t *cim_json_read(const void *text, size_t len, size_t flags,
		      json_error_t *err);

#endif
