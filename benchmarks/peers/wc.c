/* The benchmark's physical anchor: word frequencies in plain single-threaded C.
 *
 * wc FILE OUTPUT writes "word<TAB>count\n" for every distinct word of FILE, words cut as
 * Python's bytes.split() cuts them (runs of bytes other than ASCII whitespace: 9 to 13 and
 * 32; every other byte, UTF-8 or not, belongs to a word). What a careful programmer writes
 * in an afternoon: the file read in 16 MiB chunks, FNV-1a, one open-addressing table with
 * linear probing kept at most half full, words copied once into an arena. No threads, no
 * SIMD, no memory mapping.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#ifndef CHUNK /* tests build it with small chunks, to cut words at their ends */
#define CHUNK (16u << 20)
#endif
#define ARENA_BLOCK (64u << 20)

typedef struct {
    uint64_t hash; /* 0: an empty slot */
    const unsigned char *word;
    uint32_t length;
    uint64_t count;
} slot_t;

static slot_t *slots;
static size_t mask, used;
static unsigned char *arena;
static size_t arena_left;

static void die(const char *what) {
    fprintf(stderr, "wc: %s: %s\n", what, strerror(errno));
    exit(1);
}

static void *checked(void *p) {
    if (p == NULL) die("out of memory");
    return p;
}

static const unsigned char *keep(const unsigned char *word, uint32_t length) {
    if (length > arena_left) {
        size_t size = length > ARENA_BLOCK ? length : ARENA_BLOCK;
        arena = checked(malloc(size));
        arena_left = size;
    }
    unsigned char *copy = arena;
    memcpy(copy, word, length);
    arena += length;
    arena_left -= length;
    return copy;
}

static void grow(void) {
    size_t size = (mask + 1) * 2;
    slot_t *bigger = checked(calloc(size, sizeof(slot_t)));
    for (size_t i = 0; i <= mask; i++) {
        if (slots[i].hash == 0) continue;
        size_t s = slots[i].hash & (size - 1);
        while (bigger[s].hash != 0) s = (s + 1) & (size - 1);
        bigger[s] = slots[i];
    }
    free(slots);
    slots = bigger;
    mask = size - 1;
}

static void count(const unsigned char *word, uint32_t length) {
    uint64_t h = 1469598103934665603ull;
    for (uint32_t i = 0; i < length; i++) h = (h ^ word[i]) * 1099511628211ull;
    h |= 1; /* never 0 */
    size_t s = h & mask;
    while (slots[s].hash != 0) {
        if (slots[s].hash == h && slots[s].length == length && memcmp(slots[s].word, word, length) == 0) {
            slots[s].count++;
            return;
        }
        s = (s + 1) & mask;
    }
    slots[s] = (slot_t){h, keep(word, length), length, 1};
    if (2 * ++used > mask + 1) grow();
}

static int space(unsigned char c) { return c == ' ' || (c >= 9 && c <= 13); }

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: wc FILE OUTPUT\n");
        return 2;
    }
    int fd = open(argv[1], O_RDONLY);
    if (fd < 0) die(argv[1]);
    mask = (1u << 16) - 1;
    slots = checked(calloc(mask + 1, sizeof(slot_t)));
    size_t capacity = CHUNK, held = 0; /* held: the start of a word cut by the chunk's end */
    unsigned char *buffer = checked(malloc(capacity));
    for (;;) {
        if (held == capacity) buffer = checked(realloc(buffer, capacity *= 2)); /* a word longer than a chunk */
        ssize_t got = read(fd, buffer + held, capacity - held);
        if (got < 0) die(argv[1]);
        size_t end = held + (size_t)got, i = 0;
        held = 0;
        for (;;) {
            while (i < end && space(buffer[i])) i++;
            if (i == end) break;
            size_t start = i;
            while (i < end && !space(buffer[i])) i++;
            if (i == end && got > 0) { /* the word may go on in the next chunk */
                held = end - start;
                memmove(buffer, buffer + start, held);
                break;
            }
            count(buffer + start, (uint32_t)(i - start));
        }
        if (got == 0) break;
    }
    close(fd);
    FILE *out = fopen(argv[2], "wb");
    if (out == NULL) die(argv[2]);
    for (size_t s = 0; s <= mask; s++) {
        if (slots[s].hash == 0) continue;
        fwrite(slots[s].word, 1, slots[s].length, out);
        fprintf(out, "\t%llu\n", (unsigned long long)slots[s].count);
    }
    if (fclose(out) != 0) die(argv[2]);
    return 0;
}
