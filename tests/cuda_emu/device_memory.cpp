/* device_memory.cpp — device memory behind page protection (device_memory.h). */
#include "device_memory.h"

#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <map>
#include <mutex>

#include "emu_runtime.h"

namespace kao_emu {

static const size_t DEVICE_BYTES = (size_t)16 << 30; /* the emulated card's memory */

struct block {
    char *map;         /* guard page, data pages, guard page */
    size_t data_bytes; /* the data pages' */
    size_t size;       /* the caller's */
};

static std::mutex mutex; /* guards everything below */
static std::map<uintptr_t, block> blocks; /* by start */
static size_t used;
static bool open_now;

static size_t page_bytes() {
    static const size_t page = (size_t)sysconf(_SC_PAGESIZE);
    return page;
}

static void protect(const block &b, bool open) {
    if (mprotect(b.map + page_bytes(), b.data_bytes, open ? PROT_READ | PROT_WRITE : PROT_NONE) != 0)
        fail("mprotect of a device block of %zu bytes failed", b.size);
}

void *device_alloc(size_t size) {
    std::lock_guard<std::mutex> lock(mutex);
    if (size > DEVICE_BYTES - used) return nullptr;
    size_t page = page_bytes(), data = (size + page - 1) / page * page;
    if (data == 0) data = page;
    char *map = (char *)mmap(nullptr, data + 2 * page, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (map == MAP_FAILED) return nullptr;
    block b = {map, data, size};
    protect(b, true);
    memset(map + page, 0xff, data);
    uintptr_t start = ((uintptr_t)(map + page + data) - size) & ~(uintptr_t)255;
    if (!open_now) protect(b, false);
    blocks[start] = b;
    used += size;
    return (void *)start;
}

bool device_free(void *p) {
    std::lock_guard<std::mutex> lock(mutex);
    auto it = blocks.find((uintptr_t)p);
    if (it == blocks.end()) return false;
    munmap(it->second.map, it->second.data_bytes + 2 * page_bytes());
    used -= it->second.size;
    blocks.erase(it);
    return true;
}

bool is_device(const void *p, size_t bytes) {
    std::lock_guard<std::mutex> lock(mutex);
    uintptr_t a = (uintptr_t)p;
    auto it = blocks.upper_bound(a);
    if (it == blocks.begin()) return false;
    --it;
    return a + bytes <= it->first + it->second.size;
}

void device_usage(size_t *used_bytes, size_t *total) {
    std::lock_guard<std::mutex> lock(mutex);
    *used_bytes = used;
    *total = DEVICE_BYTES;
}

void device_access(bool open) {
    std::lock_guard<std::mutex> lock(mutex);
    if (open == open_now) return;
    for (auto &entry : blocks) protect(entry.second, open);
    open_now = open;
}

} // namespace kao_emu
