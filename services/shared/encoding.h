/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* encoding.h: hex and base64 (nettle's base16/base64 codecs underneath). */
#pragma once

#include <stddef.h>
#include <stdbool.h>
#include <stdint.h>

/* Each returns a newly allocated NUL-terminated string, or NULL on ENOMEM. Lower-case hex. */
char *hex_encode(const void *p, size_t n);
char *base64_encode(const void *p, size_t n);

/* Decode into a newly allocated buffer (*ret, *ret_size). Whitespace is not accepted: input comes from the
 * network or disk and must be exact. Returns 0, -EINVAL on bad input, -ENOMEM. When secure is true the output
 * buffer is secret memory (free with eve_secret_free), otherwise plain malloc memory. */
int hex_decode(const char *s, size_t len, bool secure, uint8_t **ret, size_t *ret_size);
int base64_decode(const char *s, size_t len, bool secure, uint8_t **ret, size_t *ret_size);

/* A size as people write it: decimal bytes, or with a K, M, G or T suffix (powers of 1024): "512M", "2G".
 * -EINVAL on anything else, -ERANGE on overflow. */
int parse_size(const char *s, uint64_t *ret);

/* A time span as people write it, in µs: decimal with ms, s, min or h, or plain seconds: "100ms", "5s",
 * "10min", "2h", "60". -EINVAL on anything else, -ERANGE on overflow. */
int parse_timespan(const char *s, uint64_t *ret_usec);
