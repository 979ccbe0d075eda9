// Just enough JSON for the data tools: decoding string values (encoder.json's
// keys, the "text" field of JSON-lines corpora) and skipping anything else.
#ifndef DATA_JSON_H
#define DATA_JSON_H

#include <stddef.h>
#include <stdint.h>
#include "buf.h"

// Skips spaces, tabs, CR and LF from *pos.
void json_skip_ws(const uint8_t* s, size_t n, size_t* pos);

// Decodes the string literal starting at s[*pos] (which must be '"') and
// appends its UTF-8 bytes to out; *pos ends just past the closing quote.
// A \u escape naming an unpaired surrogate becomes U+FFFD, as it cannot be
// UTF-8. Returns 0, or -1 when the literal is malformed or unterminated.
int json_string(const uint8_t* s, size_t n, size_t* pos, Buf* out);

// Skips one value of any type starting at s[*pos]. Returns 0 or -1.
int json_skip_value(const uint8_t* s, size_t n, size_t* pos);

// In a line holding one JSON object, finds the top-level string field `key`
// and appends its decoded value to out. Returns 1 when found, 0 when the
// object has no such string field, -1 when the line is not a JSON object.
int json_object_string_field(const uint8_t* s, size_t n, const char* key, Buf* out);

#endif // DATA_JSON_H
