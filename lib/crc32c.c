/*
 * lib/crc32c.c: CRC32C. The SSE4.2 crc32 instruction, three stripes at a
 * time on long inputs, so checksumming every chunk block costs little next
 * to the write(2) itself; a slicing table covers CPUs without it.
 */
#include "crc32c.h"

#include <pthread.h>
#include <string.h>

static uint32_t table[8][256];
static pthread_once_t table_once = PTHREAD_ONCE_INIT;

static void table_init(void)
{
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++)
            c = c & 1 ? (c >> 1) ^ 0x82f63b78u : c >> 1;
        table[0][i] = c;
    }
    for (uint32_t i = 0; i < 256; i++)
        for (int t = 1; t < 8; t++)
            table[t][i] = (table[t - 1][i] >> 8) ^ table[0][table[t - 1][i] & 0xff];
}

static uint32_t crc_sw(uint32_t crc, const uint8_t *p, size_t n)
{
    pthread_once(&table_once, table_init);
    while (n >= 8) {
        uint64_t v;
        memcpy(&v, p, 8);
        v ^= crc;
        crc = table[7][v & 0xff] ^ table[6][(v >> 8) & 0xff] ^ table[5][(v >> 16) & 0xff] ^
              table[4][(v >> 24) & 0xff] ^ table[3][(v >> 32) & 0xff] ^ table[2][(v >> 40) & 0xff] ^
              table[1][(v >> 48) & 0xff] ^ table[0][v >> 56];
        p += 8;
        n -= 8;
    }
    while (n--)
        crc = (crc >> 8) ^ table[0][(crc ^ *p++) & 0xff];
    return crc;
}

#if defined(__x86_64__)
/* The crc32 instruction has a latency of 3 cycles and a throughput of 1: one
 * dependent chain uses a third of it. Long inputs are cut into rounds of
 * three stripes of STRIPE bytes checksummed side by side (a from the running
 * state, b and c from 0), then joined: the raw CRC register is linear, so
 * crc(s, A|B|C) = Z2(crc(s, A)) ^ Z1(crc(0, B)) ^ crc(0, C), where Zk moves a
 * register past k*STRIPE zero bytes (shift_tbl, built once). */
#define STRIPE 4096
static uint32_t shift_tbl[2][4][256]; /* [Z1, Z2][byte of the register][its value] */
static pthread_once_t shift_once = PTHREAD_ONCE_INIT;

__attribute__((target("sse4.2"))) static uint32_t crc_hw1(uint32_t crc, const uint8_t *p, size_t n)
{
    uint64_t c = crc;
    while (n >= 8) {
        uint64_t v;
        memcpy(&v, p, 8);
        c = __builtin_ia32_crc32di(c, v);
        p += 8;
        n -= 8;
    }
    uint32_t c32 = (uint32_t)c;
    while (n--)
        c32 = __builtin_ia32_crc32qi(c32, *p++);
    return c32;
}

static void shift_init(void)
{
    static const uint8_t zeros[2 * STRIPE];
    for (int z = 0; z < 2; z++) {
        uint32_t col[32]; /* the operator applied to each bit of the register */
        for (int i = 0; i < 32; i++)
            col[i] = crc_hw1(1u << i, zeros, (size_t)(z + 1) * STRIPE);
        for (int k = 0; k < 4; k++)
            for (uint32_t v = 0; v < 256; v++) {
                uint32_t r = 0;
                for (int bit = 0; bit < 8; bit++)
                    if (v >> bit & 1)
                        r ^= col[8 * k + bit];
                shift_tbl[z][k][v] = r;
            }
    }
}

static inline uint32_t shift(int z, uint32_t r)
{
    return shift_tbl[z][0][r & 0xff] ^ shift_tbl[z][1][(r >> 8) & 0xff] ^ shift_tbl[z][2][(r >> 16) & 0xff] ^
           shift_tbl[z][3][r >> 24];
}

__attribute__((target("sse4.2"))) static uint32_t crc_hw(uint32_t crc, const uint8_t *p, size_t n)
{
    if (n >= 3 * STRIPE) {
        pthread_once(&shift_once, shift_init);
        do {
            uint64_t a = crc, b = 0, c = 0;
            for (size_t i = 0; i < STRIPE; i += 8) {
                uint64_t va, vb, vc;
                memcpy(&va, p + i, 8);
                memcpy(&vb, p + STRIPE + i, 8);
                memcpy(&vc, p + 2 * STRIPE + i, 8);
                a = __builtin_ia32_crc32di(a, va);
                b = __builtin_ia32_crc32di(b, vb);
                c = __builtin_ia32_crc32di(c, vc);
            }
            crc = shift(1, (uint32_t)a) ^ shift(0, (uint32_t)b) ^ (uint32_t)c;
            p += 3 * STRIPE;
            n -= 3 * STRIPE;
        } while (n >= 3 * STRIPE);
    }
    return crc_hw1(crc, p, n);
}
#endif

uint32_t crc32c(uint32_t crc, const void *p, size_t n)
{
    crc = ~crc;
#if defined(__x86_64__)
    static _Atomic int hw = -1; /* benign race: every thread computes the same value */
    if (hw < 0)
        hw = __builtin_cpu_supports("sse4.2") ? 1 : 0;
    if (hw)
        return ~crc_hw(crc, p, n);
#endif
    return ~crc_sw(crc, p, n);
}
