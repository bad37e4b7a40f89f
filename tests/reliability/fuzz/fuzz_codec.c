/* libFuzzer harness over the hot path's parsers (p11fast/codec/): base64, JSON member lookup
 * and unescaping, ECDSA DER <-> raw. It includes the C that Cython generates for the codec's
 * pieces alone (test_fuzz.py: codec_alone), so the functions are the very ones the module
 * runs; they are nogil and touch no Python object, so no interpreter is started.
 *
 * Every input is copied into a heap block of exactly its size, and every output buffer is
 * exactly `cap` long: AddressSanitizer reports any read or write outside. Results are
 * checked against the contracts in p11fast/codec/*.pxd. */
#include "codec.c"

#include <assert.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define B64_DECODE __pyx_f_5codec_b64_decode
#define B64_ENCODE __pyx_f_5codec_b64_encode
#define B64_LEN __pyx_f_5codec_b64_encoded_len
#define JSON_GET __pyx_f_5codec_json_get_string
#define JSON_ESCAPE __pyx_f_5codec_json_escape
#define JSON_UNESCAPE __pyx_f_5codec_json_unescape
#define DER_TO_RAW __pyx_f_5codec_ecdsa_der_to_raw
#define RAW_TO_DER __pyx_f_5codec_ecdsa_raw_to_der

static const char *const KEYS[] = {"signature", "decrypted", "message", "a", ""};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    unsigned op = data[0], knob = data[1];
    size -= 2;
    char *in = malloc(size ? size : 1);
    memcpy(in, data + 2, size);
    size_t cap = knob % 4 == 0 ? (size_t)knob : size + 8;
    unsigned char *out = malloc(cap ? cap : 1);
    switch (op % 5) {
    case 0: { /* base64 decode, then the round trip must give the same bytes back */
        Py_ssize_t n = B64_DECODE(in, size, out, cap);
        assert(n >= -2 && (n < 0 || (size_t)n <= cap));
        if (n > 0) {
            size_t m = B64_LEN((size_t)n);
            char *again = malloc(m);
            unsigned char *back = malloc((size_t)n);
            assert(B64_ENCODE(out, (size_t)n, again) == m);
            assert(B64_DECODE(again, m, back, (size_t)n) == n);
            assert(memcmp(back, out, (size_t)n) == 0);
            free(again);
            free(back);
        }
        break;
    }
    case 1: { /* JSON member lookup: a found value lies inside the document */
        const char *value = NULL;
        size_t value_len = 0;
        int rc = JSON_GET(in, size, KEYS[knob % 5], &value, &value_len);
        assert(rc == 0 || rc == -1 || rc == -2);
        if (rc == 0) {
            assert(value >= in && value + value_len <= in + size);
            Py_ssize_t n = JSON_UNESCAPE(value, value_len, (char *)out, cap);
            assert(n >= -2 && (n < 0 || (size_t)n <= cap));
        }
        break;
    }
    case 2: { /* unescape any bytes */
        Py_ssize_t n = JSON_UNESCAPE(in, size, (char *)out, cap);
        assert(n >= -2 && (n < 0 || (size_t)n <= cap));
        break;
    }
    case 3: { /* escape, then unescape gives the bytes back */
        Py_ssize_t n = JSON_ESCAPE(in, size, (char *)out, cap);
        assert(n >= -1 && (n < 0 || (size_t)n <= cap));
        if (n >= 0) {
            char *back = malloc(size ? size : 1);
            Py_ssize_t m = JSON_UNESCAPE((const char *)out, (size_t)n, back, size);
            /* Escaping passes non-ASCII bytes through; unescaping may reject invalid UTF-8. */
            assert(m < 0 || ((size_t)m == size && memcmp(back, in, size) == 0));
            free(back);
        }
        break;
    }
    default: { /* DER -> raw for every curve length, and raw -> DER -> raw round trip */
        static const size_t FIELDS[] = {32, 48, 66, 1};
        size_t field = FIELDS[knob % 4];
        unsigned char *raw = malloc(2 * field);
        Py_ssize_t n = DER_TO_RAW((const unsigned char *)in, size, field, raw);
        assert(n == -1 || n == (Py_ssize_t)(2 * field));
        if (n > 0) {
            unsigned char *der = malloc(2 * field + 16);
            Py_ssize_t d = RAW_TO_DER(raw, 2 * field, der, 2 * field + 16);
            assert(d > 0);
            unsigned char *raw2 = malloc(2 * field);
            assert(DER_TO_RAW(der, (size_t)d, field, raw2) == n);
            assert(memcmp(raw, raw2, 2 * field) == 0);
            free(raw2);
            free(der);
        }
        free(raw);
        break;
    }
    }
    free(out);
    free(in);
    return 0;
}
