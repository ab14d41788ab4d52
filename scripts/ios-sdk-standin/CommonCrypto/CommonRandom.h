/* Stand-in: CommonCrypto's random-bytes call, as declared by Apple's public API. */
#pragma once
#include <stddef.h>
#include <stdint.h>
typedef int32_t CCStatus;
typedef CCStatus CCRNGStatus;
enum { kCCSuccess = 0 };
CCRNGStatus CCRandomGenerateBytes(void *bytes, size_t count);
