/* Codebook decode: b-bit indices into per-channel int8 tables -> the plain int8 weights.
 *
 * Element i of the flat (row-major) tensor takes the b bits of indices[(i * b) / 8] starting
 * at bit (i * b) % 8 (the first element in the low bits) and reads entry that of the table
 * row of its channel, (i / inner) % channels; each row holds 2^b values. */
#include "ts_kernels.h"

void ts_unpack_codebook(const uint8_t *indices, const int8_t *table, int bits, int channels,
                        size_t inner, size_t numel, int8_t *output)
{
    const unsigned mask = (1u << bits) - 1u;
    const size_t row = (size_t)1 << bits;
    size_t i = 0;
    if (channels <= 0 || inner == 0) {
        return;
    }
    while (i < numel) {
        int c;
        for (c = 0; c < channels && i < numel; ++c) {
            const int8_t *values = table + (size_t)c * row;
            size_t j;
            for (j = 0; j < inner && i < numel; ++j, ++i) {
                const size_t bit = i * (size_t)bits;
                output[i] = values[((unsigned)indices[bit >> 3] >> (bit & 7u)) & mask];
            }
        }
    }
}
