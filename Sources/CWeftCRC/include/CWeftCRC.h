#ifndef CWEFTCRC_H
#define CWEFTCRC_H
#include <stddef.h>
#include <stdint.h>

/// CRC-32C (Castagnoli) of `length` bytes, continuing from `crc` (0 to start). Uses the SSE4.2
/// crc32 instruction when the CPU has it, else a table-driven fallback.
uint32_t weft_crc32c(uint32_t crc, const void *data, size_t length);

#endif
